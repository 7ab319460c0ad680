"""The model picker with pretrained models of the server's (``EXPLORER_MODELS``) or, in a single-user run
(``EXPLORER_OPEN_MODELS=1``), typed by the user: loading in the background while the pages show the default,
then every page on the loaded model, fill-mask on a masked-LM head, and a shared server that never opens a
model it does not list."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from pages.common import server_models
from tests.app.test_pages import PAGES, app  # every page but Train, with its title
from tests.hf_models import write_model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("app-models")
    return {
        "electra": write_model(root / "tiny-electra", "electra"),
        "roberta": write_model(root / "tiny-roberta", "roberta"),
        "bert": write_model(root / "tiny-bert", "bert", head=False),
    }


@pytest.fixture
def server(folders, monkeypatch):
    """A shared server that lists the tiny ELECTRA and RoBERTa (not the BERT)."""
    monkeypatch.setenv(server_models.MODELS_ENV, f"{folders['electra']}, {folders['roberta']}")
    monkeypatch.delenv(server_models.OPEN_MODELS_ENV, raising=False)
    return folders


def start(page: str | None = None, **query: str) -> AppTest:
    return app(page, timeout=180, **query)  # loading a folder model takes longer than a page


def sidebar_model(at: AppTest) -> str:
    return " ".join(m.value for m in at.sidebar.markdown if "Model:" in m.value)


def until_loaded(at: AppTest, name: str, seconds: float = 120) -> AppTest:
    """Reruns (as the sidebar's loading fragment does twice a second in a browser) until the pages show
    ``name``; each run before that must show the default model and say it is loading."""
    deadline = time.monotonic() + seconds
    while name not in sidebar_model(at):
        assert time.monotonic() < deadline, f"{name} never loaded: {[w.value for w in at.sidebar.warning]}"
        assert not at.exception, [e.value for e in at.exception]
        assert "checkpoint default" in sidebar_model(at)  # the default meanwhile, never an empty page
        assert any("Loading" in c.value for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
        time.sleep(0.3)
        at.run()
    return at


def test_the_picker_offers_the_servers_models_and_a_link_opens_one(server):
    at = start("pages/fill_mask.py", model=str(server["roberta"]), text="The cat sat on the [MASK].")
    picker = at.selectbox(key="sidebar_model")
    assert picker.options[:2] == ["English MLM (default)", "MiniLM-L6 (pretrained)"]
    assert "tiny-electra (folder)" in picker.options and "tiny-roberta (folder)" in picker.options
    assert not at.sidebar.text_input  # a shared server: nothing to type a path into
    until_loaded(at, "tiny-roberta")
    assert not at.exception and [t.value for t in at.title] == ["Fill mask"]
    assert any(m.value.startswith("Best guess: The cat sat on the **") for m in at.markdown)
    assert at.query_params["model"] in (str(server["roberta"]), [str(server["roberta"])])
    # Another session picks the same model: loaded once per server, shown at once.
    other = start("pages/tokens.py", model=str(server["roberta"]))
    assert "tiny-roberta" in sidebar_model(other) and "&lt;s&gt;" in other.get("html")[0].proto.body  # <s> chip


@pytest.mark.parametrize("page,title", PAGES.items())
def test_every_page_renders_with_a_narrow_embedding_masked_lm(server, page, title):
    at = until_loaded(start(page, model=str(server["electra"]), text="She opened the [MASK] slowly."), "tiny-electra")
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]
    assert not any("Traceback" in w.value for w in [*at.warning, *at.info, *at.error])
    if page == "pages/interpret.py":
        at.segmented_control(key="interpret_view").set_value("Logit lens").run()
        assert not at.exception and not at.info  # a masked-LM head: the lens reads the stream through it
        assert any("interpret_lens" in c.proto.id for c in at.get("plotly_chart"))
    if page == "pages/attention.py":
        at.segmented_control(key="attention_view").set_value("Head ablation").run()
        assert not at.exception
        assert any("attention_predictions_1" in c.proto.id for c in at.get("plotly_chart"))
    if page == "pages/fill_mask.py":
        assert any("fill_mask_1" in c.proto.id for c in at.get("plotly_chart"))
    if page == "pages/step_through.py":  # the first layer's input: narrow embeddings projected up to the stream
        assert any("8 numbers projected up to 16" in c.value for c in at.caption), [c.value for c in at.caption]


def link_notice(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning if "values in this link" in w.value)


def test_a_shared_server_opens_no_model_it_does_not_list(server):
    unlisted = str(server["bert"])
    at = start("pages/tokens.py", model=unlisted)
    assert not at.exception
    assert "checkpoint default" in sidebar_model(at)
    # The note at the top of the page names the link's value and the models a link can open here.
    notice = link_notice(at)
    assert f"model={unlisted}" in notice and str(server["electra"]) in notice and "minilm" in notice
    assert unlisted not in server_models._LOADS  # never read
    assert "model" not in at.query_params
    # Picking one of the server's models takes the note away.
    at.selectbox(key="sidebar_model").set_value(str(server["electra"])).run()
    assert not link_notice(at)
    until_loaded(at, "tiny-electra")


def test_a_single_user_run_opens_a_typed_folder(folders, monkeypatch):
    monkeypatch.delenv(server_models.MODELS_ENV, raising=False)
    monkeypatch.setenv(server_models.OPEN_MODELS_ENV, "1")
    at = start("pages/fill_mask.py", text="A [MASK] sat on the mat.")
    box = at.sidebar.text_input(key="sidebar_open_model")
    box.set_value(str(folders["bert"])).run()
    until_loaded(at, "tiny-bert")
    assert "tiny-bert (folder)" in at.selectbox(key="sidebar_model").options
    assert any("not trained to fill masks" in w.value for w in at.warning)  # a base model: no head
    assert any("An encoder without a prediction head" in c.value for c in at.sidebar.caption)
    at.text_input(key="sidebar_open_model").set_value(str(folders["bert"].parent / "missing")).run()
    for _ in range(50):
        if at.sidebar.warning:
            break
        time.sleep(0.2)
        at.run()
    assert any("is not a folder" in w.value and "default model meanwhile" in w.value for w in at.sidebar.warning)
    assert not at.exception
