"""The text that explains a model matches the model on screen, for every kind of model the picker offers: the
default, MiniLM, a user's own model with learned positions, pre-LN and an untied head, or with no positions at
all, and pretrained folders the server offers (a tiny ELECTRA generator with narrow embeddings and ReLU, a tiny
RoBERTa with byte-level BPE and ``<s>``/``</s>``). Each page (and each Embeddings view) is read as a person
reads it: captions, paragraphs, notes, and the Model page's forward pass."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from explorer.interpret.shapes import ACTIVATION_NAMES
from tests.app.test_pages import APP, assert_ok

EMBEDDING_VIEWS = ["Token embeddings", "Positional encoding", "Sum into layer 1", "Position similarity"]
PAGES = {
    "pages/tokens.py": "Tokens",
    "pages/fill_mask.py": "Fill mask",
    "pages/attention.py": "Attention",
    "pages/layernorm.py": "Layer norm & residual stream",
    "pages/model.py": "Model",
}


def own_model(**fields):
    from explorer.model.bundle import ModelBundle
    from explorer.model.config import ModelConfig
    from explorer.text.texts import vocab_for

    config = ModelConfig(vocab_size=512, d_model=32, num_heads=4, num_layers=2, ffn_size=64, max_len=64, **fields)
    return ModelBundle.random(config, vocab_for("grammar", 512), seed=2)


MODELS = {
    "default": None,
    "minilm": None,
    "learned positions, pre-LN, untied head": dict(positional="learned", layer_norm="pre", tie_embeddings=False),
    "no positions": dict(positional="none"),
}
# Folders in Hugging Face's layout, offered by the server (EXPLORER_MODELS) and named in the link.
FOLDERS = {
    "ELECTRA folder, ReLU": ("electra", dict(hidden_act="relu")),
    "RoBERTa folder": ("roberta", {}),
}


def texts(at: AppTest) -> str:
    """What the page says in words: captions, Markdown, notes, chart titles, and the Model page's forward-pass
    steps."""
    found = [e.value for kind in ("caption", "markdown", "info", "warning", "success") for e in getattr(at, kind)]
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        found.append(spec["layout"].get("title", {}).get("text", ""))  # a heatmap's title names its shape
        if spec["layout"].get("title", {}).get("text", "").startswith("The forward pass"):
            found += [t for trace in spec["data"] for t in trace.get("text", [])]
    return "\n".join(found)


def sidebar_model(at: AppTest) -> str:
    return " ".join(m.value for m in at.sidebar.markdown if "Model:" in m.value)


def read_every_page(model: str, folder=None) -> dict[str, str]:
    at = AppTest.from_file(APP, default_timeout=180)
    if model == "minilm":
        at.query_params["model"] = "minilm"
    elif folder is not None:
        at.query_params["model"] = str(folder)
    elif MODELS[model] is not None:
        at.session_state["model_own"] = {"uploaded-1": own_model(**MODELS[model])}  # in the picker, chosen
        at.session_state["model_choice"] = "uploaded-1"
    at.run()
    deadline = time.monotonic() + 120
    while folder is not None and folder.name not in sidebar_model(at):  # loading in the server's background
        assert time.monotonic() < deadline and not at.exception, (sidebar_model(at), at.exception)
        time.sleep(0.3)
        at.run()
    read = {}
    for page, title in PAGES.items():
        at.switch_page(page).run()
        assert_ok(at, title)
        read[page] = texts(at)
    at.switch_page("pages/embeddings.py").run()
    for view in EMBEDDING_VIEWS:
        at.segmented_control(key="embeddings_view").set_value(view).run()
        assert_ok(at, "Embeddings & positions")
        read[f"embeddings: {view}"] = texts(at)
    return read, at


@pytest.mark.parametrize("model", [*MODELS, *FOLDERS])
def test_the_pages_explain_the_model_on_screen(model, tmp_path, monkeypatch):
    from explorer.model import pretrained
    from pages.common import server_models
    from tests.hf_models import write_model

    if model == "minilm" and pretrained.available():
        pytest.fail(pretrained.available())  # `make test` installs it
    folder = None
    if model in FOLDERS:
        architecture, changes = FOLDERS[model]
        folder = write_model(tmp_path / f"tiny-{architecture}", architecture, **changes)
        monkeypatch.setenv(server_models.MODELS_ENV, str(folder))
    read, at = read_every_page(model, folder)
    if model == "minilm":
        bundle = pretrained.load_minilm()
    elif folder is not None:
        bundle = server_models.model_load(str(folder)).snapshot()[2]
    elif MODELS[model] is not None:
        bundle = at.session_state["model_own"]["uploaded-1"]
    else:
        from explorer import DEFAULT_CHECKPOINT
        from explorer.model import checkpoint

        bundle = checkpoint.load_default(DEFAULT_CHECKPOINT)[0]
    config, vocab = bundle.config, bundle.vocab
    everything = "\n".join(read.values())
    embeddings = "\n".join(text for page, text in read.items() if page.startswith("embeddings"))
    architecture = read["pages/model.py"]

    assert ("√D" in embeddings) == config.scale_embeddings, embeddings
    assert ("sqrt(D" in architecture) == config.scale_embeddings
    assert ("token-type" in embeddings) == ("token-type" in architecture) == bool(config.token_types)
    assert ("layer-normalised" in embeddings) == config.embedding_norm
    assert ("embedding layer norm" in read["pages/layernorm.py"]) == config.embedding_norm
    assert ("layer norm (embedding)" in architecture) == config.embedding_norm
    assert ("BPE" in everything) == (vocab.kind == "byte-level BPE")
    assert ("WordPiece" in everything) == (vocab.kind == "WordPiece")
    assert ("[CLS]" in read["pages/tokens.py"]) == ("[CLS]" in vocab.special_texts)
    assert all(special in read["pages/tokens.py"] for special in vocab.special_texts)
    assert ("post-LN" in everything) == (config.layer_norm == "post")
    assert ("pre-LN" in everything) == (config.layer_norm == "pre")
    assert ("sinusoid" in everything) == (config.positional == "sinusoidal")
    assert ("learned" in embeddings) == (config.positional == "learned")
    assert ("no positional encoding" in embeddings) == (config.positional == "none")
    assert vocab.mask_text in read["pages/fill_mask.py"]
    # The fields of the rest of the BERT family: narrow embeddings, the activation, a masked-LM head's transform.
    narrow = config.embedding_width != config.d_model
    assert ("embedding projection" in embeddings) == ("linear E -> D" in architecture) == narrow
    assert ("[T, E]" in embeddings) == narrow
    assert f"D -> F, {ACTIVATION_NAMES[config.activation]}" in architecture
    assert ("ReLU" in architecture) == (config.activation == "relu")
    assert ("head transform" in architecture) == config.head_transform
