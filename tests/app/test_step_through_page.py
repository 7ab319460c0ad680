"""The Step through page under AppTest: on the default model, MiniLM and a user's own pre-LN model, with and
without the causal mask, every step is drawn with its formula, the weights it shows are the encoder's own
attention row, its choices live in the link, and the Attention page outlines the same row and leads to it."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.model.inference import InferenceEngine
from explorer.pipeline import run_text
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGE = "pages/step_through.py"
TEXT = "She opened the door and walked into the room."


def open_step_through(bundle=None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    if bundle is not None:
        at.session_state["model_own"] = {"uploaded-1": bundle}  # the user's own model, in the picker and chosen
        at.session_state["model_choice"] = "uploaded-1"
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGE).run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Step through"]


def figures(at: AppTest) -> dict[str, dict]:
    """The page's charts by step name (their keys are ``step_<name>``)."""
    return {
        chart.proto.id.rsplit("step_", 1)[-1]: json.loads(chart.proto.spec)
        for chart in at.get("plotly_chart")
        if "step_" in chart.proto.id
    }


def numbers(value) -> np.ndarray:
    """Plotly sends numpy arrays as base64 typed arrays; lists stay lists."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return data.reshape([int(n) for n in str(value.get("shape", len(data))).split(",")])
    return np.asarray(value, np.float64)


def step_titles(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**") and ". " in m.value[:8]]


def model_attention_row(bundle, layer: int, head: int, query: int, causal: bool = False) -> np.ndarray:
    """The encoder's own attention row for the page's text, through the app's one text-to-model path."""
    result = run_text(bundle, InferenceEngine(bundle.config), TEXT, causal=causal).result
    return result.attention_weights[layer - 1, head - 1, query]


def check_page(at: AppTest, bundle, layer: int, head: int, query: int, causal: bool) -> None:
    charts = figures(at)
    titles = step_titles(at)
    assert len(titles) == len(at.latex) == len(charts) >= 15  # every step: a heading, a formula, a picture
    for name in ("input", "query", "keys", "values", "scores", "weights", "head_output", "attention_output",
                 "after_attention", "ffn_hidden", "ffn_activation", "ffn_output", "layer_output"):  # fmt: skip
        assert name in charts, name
    weights = numbers(charts["weights"]["data"][1]["y"])  # the pair's lower plot: the weights
    assert ("mask" in charts) == (causal and query < len(weights) - 1)  # a step only when a key is hidden
    np.testing.assert_allclose(weights, model_attention_row(bundle, layer, head, query, causal), atol=1e-5)
    keys = charts["keys"]
    assert len(keys["data"][0]["y"]) == len(weights) and keys["layout"]["shapes"]  # a row per token, query outlined
    assert f"{query} " in keys["data"][0]["y"][query]
    assert (
        rf"\sqrt{{{bundle.config.key_size}}}" in at.latex[titles.index(next(t for t in titles if "Scores" in t))].value
    )


def test_default_model_from_a_link(default_bundle):
    at = open_step_through(text=TEXT, layer="2", head="3", query="3")
    assert at.selectbox(key="step_layer").value == 2 and at.selectbox(key="step_head").value == 3
    assert at.selectbox(key="attention_query").value == 3
    check_page(at, default_bundle, 2, 3, 3, causal=False)
    titles = step_titles(at)
    assert any("Layer norm: after attention (post-LN)" in t for t in titles)  # the model's own placement
    at.toggle(key="attention_causal").set_value(True).run()
    assert_ok(at)
    check_page(at, default_bundle, 2, 3, 3, causal=True)
    assert at.query_params["causal"] == ["1"] or at.query_params["causal"] == "1"
    at.selectbox(key="step_head").set_value(1).run()
    at.selectbox(key="attention_query").set_value(0).run()
    assert_ok(at)
    check_page(at, default_bundle, 2, 1, 0, causal=True)
    for key, value in (("layer", "2"), ("head", None), ("query", None)):  # defaults (head 1, query 0) stay out
        assert at.query_params.get(key) in ((None,) if value is None else (value, [value])), key


def test_minilm(minilm_bundle):
    at = open_step_through(model="minilm", text=TEXT, layer="6", head="12", query="4")
    assert any("all-MiniLM-L6-v2" in m.value for m in at.sidebar.markdown)
    check_page(at, minilm_bundle, 6, 12, 4, causal=False)
    at.toggle(key="attention_causal").set_value(True).run()
    assert_ok(at)
    check_page(at, minilm_bundle, 6, 12, 4, causal=True)
    mask = figures(at)["mask"]["data"][0]
    assert [t for t in mask["text"] if t] == ["−∞"] * (len(mask["x"]) - 5)  # keys after position 4


def test_a_users_own_pre_ln_model_and_a_long_text(other_bundle):
    at = open_step_through(other_bundle, text="word " * 150, layer="7", head="8", query="63")
    assert any("seed 1" in m.value for m in at.sidebar.markdown)
    titles = step_titles(at)
    assert any("Layer norm before attention (pre-LN)" in t for t in titles)
    assert any("Layer norm before the feed-forward net (pre-LN)" in t for t in titles)
    assert any("only the first 64" in w.value for w in at.warning)  # the model's max_len cuts the text
    assert len(figures(at)["weights"]["data"][1]["x"]) == 64


def test_a_long_text_shows_a_window_of_keys_around_the_query():
    at = open_step_through(text="one two three four five six " * 30, query="100")  # 181 tokens (the last space is one)
    assert any("keys 52–147 of 181" in c.value for c in at.caption)
    keys = figures(at)["keys"]["data"][0]["y"]
    assert len(keys) == 96 and keys[0].startswith("52 ") and keys[48].startswith("100 ")
    at.selectbox(key="attention_query").set_value(170).run()  # near the end, the window stops at the last key
    assert any("keys 85–180 of 181" in c.value for c in at.caption)


def test_the_attention_page_outlines_the_row_and_opens_it_here():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["text"] = TEXT
    at.run()
    at.switch_page("pages/attention.py").run()
    at.pills(key="attention_layers").set_value([2]).run()
    at.pills(key="attention_heads").set_value([4]).run()
    at.selectbox(key="attention_query").set_value(5).run()
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)
    (outline,) = heatmap["layout"]["shapes"]
    assert (outline["y0"], outline["y1"]) == (4.5, 5.5)  # row 5, the query chosen
    at.button(key="attention_step_through").click().run()
    at.switch_page(PAGE).run()
    assert_ok(at)
    assert (at.selectbox(key="step_layer").value, at.selectbox(key="step_head").value) == (2, 4)
    assert at.selectbox(key="attention_query").value == 5  # one query choice for both pages


@pytest.fixture(scope="module")
def default_bundle():
    from explorer.model import checkpoint

    bundle, problem = checkpoint.load_default()
    assert problem is None, problem
    return bundle


@pytest.fixture(scope="module")
def minilm_bundle():
    from explorer.model import pretrained

    if pretrained.available():
        pytest.fail(pretrained.available())  # `make test` installs it: its absence is a set-up bug
    return pretrained.load_minilm()


@pytest.fixture(scope="module")
def other_bundle():
    """A user's own model with another architecture: pre-LN, learned positions, 8 heads, 7 layers, 64 tokens."""
    from explorer.model.bundle import ModelBundle
    from explorer.model.config import ModelConfig
    from explorer.text.texts import vocab_for

    config = ModelConfig(
        vocab_size=512, d_model=32, num_heads=8, num_layers=7, ffn_size=64, max_len=64,
        positional="learned", layer_norm="pre",
    )  # fmt: skip
    return ModelBundle.random(config, vocab_for("grammar", 512), seed=1)
