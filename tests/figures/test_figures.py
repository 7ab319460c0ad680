"""Figure builders: trace counts, axis labels, hover text with token strings, explicit shape errors."""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly.graph_objects as go
import pytest

from explorer.figures import attention, embeddings, head_measures, layernorm, model, predictions, tokens
from explorer.interpret import analysis, shapes
from explorer.model.config import ModelConfig
from explorer.model.positional import sinusoidal_encoding, wavelengths

LABELS = ["The", "␣cat", "␣sat", "␣the"]


def values(array) -> np.ndarray:
    """A trace's numbers: figures are finished through their dict form, where plotly stores numpy
    arrays as base64 typed arrays."""
    if isinstance(array, dict) and "bdata" in array:
        data = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        shape = [int(n) for n in str(array.get("shape", len(data))).split(",")]
        return data.reshape(shape)
    return np.asarray(array)


def attention_stack(layers=2, heads=3, length=4):
    rng = np.random.default_rng(0)
    return analysis.softmax(rng.normal(size=(layers, heads, length, length)))


def test_token_chips_escape_html_and_flag_unknown():
    html = tokens.token_chips_html(["<b>", "ok"], [1, 2], [3, 2], [True, False])
    assert "&lt;b&gt;" in html and "<b>" not in html.replace('<b style="color:#8b0000">', "")
    assert html.count("[UNK]") >= 1 and "id 1" in html and "3 bytes" in html
    with pytest.raises(ValueError, match="token labels"):
        tokens.token_chips_html(["a"], [1, 2], [1, 1])


def test_token_bytes_figure_hover_names_tokens():
    fig = tokens.token_bytes_figure(LABELS, [1, 2, 3, 4], [3, 4, 4, 4], [False, True, False, False])
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Bar)
    assert "␣cat" in fig.data[0].hovertext[1] and "[UNK]" in fig.data[0].hovertext[1]
    assert fig.layout.xaxis.title.text == "token position"


def test_attention_heatmap_labels_and_hover():
    weights = attention_stack()[0, 0]
    fig = attention.attention_heatmap(weights, LABELS, "Layer 1 · head 1")
    trace = fig.data[0]
    assert isinstance(trace, go.Heatmap)
    assert list(trace.y) == ["0 The", "1 ␣cat", "2 ␣sat", "3 ␣the"]  # repeated "the" keeps its own row
    assert list(trace.x) == list(trace.y)
    assert "%{y} → %{x}" in trace.hovertemplate and "%{z" in trace.hovertemplate
    assert fig.layout.yaxis.title.text == "query" and fig.layout.xaxis.title.text == "key (attended to)"
    assert fig.layout.title.text == "Layer 1 · head 1"
    thresholded = attention.attention_heatmap(weights, LABELS, "t", threshold=0.5)
    assert np.isnan(values(thresholded.data[0].z).astype(float)).any()
    paged = attention.attention_heatmap(weights[:2, :2], LABELS[:2], "t", start=10)
    assert paged.data[0].y[0] == "10 The"


@pytest.mark.parametrize("bad", [np.zeros((4, 3)), np.zeros((3, 3)), np.zeros((2, 4, 4))])
def test_attention_heatmap_rejects_mismatch(bad):
    with pytest.raises(ValueError):
        attention.attention_heatmap(bad, LABELS, "x")


def test_attention_grid_has_one_heatmap_per_head_and_pools_long_inputs():
    weights = attention_stack()
    fig = attention.attention_grid(weights, LABELS)
    assert len(fig.data) == 6 and all(isinstance(t, go.Heatmap) for t in fig.data)
    assert "L2 H3" in fig.data[-1].hovertemplate
    long = analysis.softmax(np.random.default_rng(0).normal(size=(1, 2, 100, 100)))
    fig = attention.attention_grid(long, [f"t{i}" for i in range(100)], max_positions=10)
    assert len(fig.data[0].x) == 10 and "–" in fig.data[0].x[0]
    with pytest.raises(ValueError, match="token labels"):
        attention.attention_grid(weights, LABELS[:3])
    subset = attention.attention_grid(weights[1:], LABELS, layer_numbers=[2])
    assert subset.data[0].hovertemplate.startswith("L2 H1")


def test_entropy_query_key_ablation_and_prediction_figures():
    weights = attention_stack()
    entropy = analysis.head_entropy(weights)
    fig = head_measures.entropy_figure(entropy, np.log2(4))
    assert values(fig.data[0].z).shape == (2, 3)
    per_query = np.stack([analysis.attention_entropy(weights[0, h]) for h in range(2)])
    fig = head_measures.entropy_per_query_figure(per_query, LABELS, ["L1 H1", "L1 H2"])
    assert len(fig.data) == 2 and "bits" in fig.data[0].hovertemplate
    scores = np.random.default_rng(0).normal(size=(2, 4))
    fig = attention.query_key_figure(scores, weights[0, :2, 1], LABELS, 1, ["L1 H1", "L1 H2"])
    assert len(fig.data) == 4 and "1 ␣cat →" in fig.data[0].hovertemplate
    with pytest.raises(ValueError):
        attention.query_key_figure(scores[:, :3], weights[0, :2, 1], LABELS, 1, ["a", "b"])
    effect = analysis.ablation_effect(np.ones((4, 3)), np.ones((4, 3)) * 1.1, np.zeros((4, 5)), np.zeros((4, 5)))
    fig = head_measures.ablation_figure(effect, LABELS, ["L1 H1"])
    assert len(fig.data) == 2 and "L1 H1" in fig.layout.title.text
    fig = predictions.predictions_figure(["cat", "dog"], np.array([0.6, 0.3]), "Top")
    assert list(fig.data[0].y) == ["1. cat", "2. dog"]
    with pytest.raises(ValueError):
        predictions.predictions_figure(["cat"], np.array([0.6, 0.3]), "Top")


def test_embedding_figures():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(4, 8))
    fig = embeddings.vector_heatmap(matrix, LABELS, "Token embeddings")
    assert "dim %{x}" in fig.data[0].hovertemplate and fig.data[0].y[1] == "1 ␣cat"
    with pytest.raises(ValueError):
        embeddings.vector_heatmap(matrix, LABELS[:3], "x")
    pe = sinusoidal_encoding(4, 8)
    fig = embeddings.positional_curves(pe, [0, 1, 6], LABELS, wavelengths(8))
    assert len(fig.data) == 3 and list(fig.data[1].customdata) == LABELS and "cos" in fig.data[1].name
    learned = embeddings.positional_curves(pe, [0, 1], LABELS)  # a learned table: no sines, no periods
    assert not any("sin" in t.name or "cos" in t.name or "period" in t.name for t in learned.data)
    with pytest.raises(ValueError, match="do not exist"):
        embeddings.positional_curves(pe, [8], LABELS)
    fig = embeddings.similarity_heatmap(analysis.position_similarity(pe), LABELS)
    assert len(fig.data[0].x) == 4
    vocab = rng.normal(size=(30, 8))
    projection = analysis.pca(vocab, 3)
    here = analysis.project_onto(matrix, projection)
    fig = embeddings.projection_figure(projection, [f"v{i}" for i in range(30)], "PCA", here, LABELS, dims=3)
    assert len(fig.data) == 2 and isinstance(fig.data[0], go.Scatter3d)
    assert list(fig.data[1].hovertext) == LABELS
    fig2 = embeddings.projection_figure(analysis.pca(matrix, 2), LABELS, "PCA")
    assert isinstance(fig2.data[0], go.Scatter) and "PC1" in fig2.layout.xaxis.title.text
    with pytest.raises(ValueError):
        embeddings.projection_figure(projection, LABELS, "PCA")


def test_layer_norm_figures():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 8))
    stats = analysis.layer_norm_stats(x, x / 2)
    fig = layernorm.norm_stats_figure(stats, 1, LABELS, "layer 1 · feed-forward LN")
    assert len(fig.data) == 4 and list(fig.data[0].x) == analysis.unique_labels(LABELS)
    with pytest.raises(ValueError):
        layernorm.norm_stats_figure(stats, 5, LABELS, "x")
    fig = layernorm.norm_overview_figure(stats, LABELS, ["a", "b", "c"])
    assert "std before LN" in fig.data[0].hovertemplate
    fig = layernorm.norm_parameters_figure(np.ones(8), np.zeros(8), "LN")
    assert [t.name for t in fig.data] == ["scale γ", "offset β"]
    fig = layernorm.activation_histogram(x[0], x[0] / 2, "LN", bins=10)
    assert len(fig.data) == 2 and values(fig.data[0].y).sum() == 32
    norms = analysis.residual_norms(x)
    fig = layernorm.residual_norm_figure(norms, ["in", "a", "b"], LABELS)
    assert len(fig.data) == 2 and "%{y}" in fig.data[0].hovertemplate
    with pytest.raises(ValueError):
        layernorm.residual_norm_figure(norms, ["in", "a"], LABELS)


def test_model_figures():
    config = ModelConfig(vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64)
    steps = shapes.shape_walk(config, 7)
    fig = model.architecture_figure(steps)
    texts = [t for trace in fig.data for t in trace.text]
    assert len(texts) == len(steps) and any("(4, 7, 7)" in t for t in texts)
    assert {trace.name for trace in fig.data} == {"input", "layer 1", "layer 2", "output"}
    rows = [("embedding", "token_embedding", 640), ("layer 1", "attention/query", 272)]
    fig = model.parameter_figure(rows)
    assert len(fig.data) == 2 and "912" in fig.layout.title.text
    with pytest.raises(ValueError):
        model.architecture_figure([])


def test_heads_figure_is_one_figure_with_a_labelled_panel_per_head():
    weights = attention_stack()
    fig = attention.heads_figure(weights[0], LABELS, ["L1 H1", "L1 H2", "L1 H3"], threshold=0.2, start=5)
    assert len(fig.data) == 3 and all(isinstance(t, go.Heatmap) for t in fig.data)
    assert [a.text for a in fig.layout.annotations] == ["L1 H1", "L1 H2", "L1 H3"]
    assert list(fig.data[0].y) == ["5 The", "6 ␣cat", "7 ␣sat", "8 ␣the"] and list(fig.data[0].x) == list(fig.data[0].y)
    assert fig.data[2].hovertemplate.startswith("L1 H3<br>%{y} → %{x}")
    assert all(t.coloraxis == "coloraxis" for t in fig.data)  # one shared colour bar
    with pytest.raises(ValueError, match="token labels"):
        attention.heads_figure(weights[0], LABELS[:2], ["a", "b", "c"])
    with pytest.raises(ValueError, match="one name per head"):
        attention.heads_figure(weights[0], LABELS, ["a"])


def test_figures_are_readable_on_light_and_dark_pages():
    fig = attention.attention_heatmap(attention_stack()[0, 0], LABELS, "x")
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)" and fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
    assert fig.layout.font.color == "#7d7d7d"  # mid grey: legible on white and on near-black


def test_every_token_axis_names_every_token():
    """Plotly thins crowded category labels; every token axis must show all of them (dtick 1)."""
    labels = [f"{i} tok" for i in range(40)]
    weights = np.full((2, 40, 40), 1 / 40, np.float32)
    figures_to_check = [
        attention.heads_figure(weights, labels, ["L1 H1", "L1 H2"]),
        embeddings.similarity_heatmap(np.eye(40), labels),
        embeddings.vector_heatmap(np.zeros((40, 8)), labels, "x"),
    ]
    for fig in figures_to_check:
        layout = fig.to_dict()["layout"]
        category_axes = [
            v for k, v in layout.items() if k.startswith(("xaxis", "yaxis")) and v.get("type") == "category"
        ]
        assert category_axes and all(axis.get("dtick") == 1 for axis in category_axes)


def test_no_figure_prints_long_floats():
    """Numbers shown in cells are rounded for people (2-3 digits); hover may say more."""
    import re

    from explorer.figures import training

    entropy = np.array([[1.9199999570846558, 0.5], [0.25, 1.0]], np.float32)
    closeness = np.array([[0.98000001, 0.1], [0.33333334, 0.5]], np.float32)
    for fig in (head_measures.entropy_figure(entropy, 2.0), training.closeness_figure(closeness)):
        trace = fig.to_dict()["data"][0]
        assert trace.get("texttemplate") == "%{z:.2f}" and "text" not in trace
        assert not re.search(
            r"\d\.\d{5,}", json.dumps({k: v for k, v in trace.items() if k in ("text", "texttemplate")})
        )


# Token labels with a repeat ("␣the" twice) and a long one, on 12 positions: every builder must name all.
TOKENS = ["The", "␣cat", "␣sat", "␣on", "␣the", "␣mat", "␣because", "␣the", "␣extraordinarily", "␣warm", "␣sun", "."]


def token_heatmaps() -> dict[str, tuple[go.Figure, list[str]]]:
    """Every heatmap builder over tokens, each with the axes that carry the tokens (``"x"``/``"y"``)."""
    from explorer.figures import interpret, similarity

    n = len(TOKENS)
    weights = attention_stack(2, 3, n)
    stats = analysis.layer_norm_stats(*np.random.default_rng(1).normal(size=(2, 3, n, 8)))
    return {
        "attention heatmap": (attention.attention_heatmap(weights[0, 0], TOKENS, "x"), ["x", "y"]),
        "heads (one)": (attention.heads_figure(weights[0, :1], TOKENS, ["L1 H1"]), ["x", "y"]),
        "heads (several)": (attention.heads_figure(weights[0], TOKENS, ["a", "b", "c"]), ["x", "y"]),
        "heads (a column)": (
            attention.heads_figure(weights[0], TOKENS, ["a", "b", "c"], columns=1, width=440),
            ["x", "y"],
        ),
        "overview grid": (attention.attention_grid(weights, TOKENS), ["x", "y"]),
        "position similarity": (embeddings.similarity_heatmap(np.eye(n), TOKENS), ["x", "y"]),
        "vectors": (embeddings.vector_heatmap(np.zeros((n, 8)), TOKENS, "x"), ["y"]),
        "token similarity": (similarity.token_similarity_figure(np.eye(n), TOKENS, TOKENS), ["x", "y"]),
        "rollout": (interpret.rollout_figure(np.eye(n), TOKENS), ["x", "y"]),
        "layer-norm overview": (layernorm.norm_overview_figure(stats, TOKENS, ["LN 1", "LN 2", "LN 3"]), ["x"]),
        "residual norms": (layernorm.residual_norm_figure(np.ones((3, n)), ["a", "b", "c"], TOKENS), ["y"]),
    }


@pytest.mark.parametrize("name", list(token_heatmaps()))
def test_every_heatmap_labels_every_token_on_its_token_axes(name):
    """The tick labels are the token labels, all of them: category axes with one tick per token, shown."""
    fig, token_axes = token_heatmaps()[name]
    spec = fig.to_dict()
    expected = analysis.unique_labels(TOKENS)
    layout = spec["layout"]
    for letter in token_axes:
        labelled = []
        for trace in spec["data"]:
            if trace["type"] != "heatmap":
                continue
            axis = layout[f"{letter}axis{trace.get(f'{letter}axis', letter)[1:]}"]
            if axis.get("showticklabels", True) and axis.get("visible", True):
                assert list(trace[letter]) == expected, (name, letter)
                assert axis.get("type") == "category" and axis.get("dtick") == 1, (name, letter, axis)
                labelled.append(axis)
        assert labelled, f"{name}: no {letter} axis shows the tokens"


def test_every_heatmap_panel_is_large_enough_for_its_labels():
    """Per token, a heads panel gets at least as many pixels as its label font needs."""
    for length in (5, 15, 40, 96):
        labels = [f"t{i}" for i in range(length)]
        fig = attention.heads_figure(np.full((4, length, length), 1 / length, np.float32), labels, list("abcd"))
        layout = fig.layout
        plot_width = layout.width - layout.margin.l - layout.margin.r
        share = layout.xaxis.domain[1] - layout.xaxis.domain[0]
        assert plot_width * share / length >= layout.xaxis.tickfont.size, length
        assert layout.width <= attention.PAGE_WIDTH


def all_figures() -> dict[str, go.Figure]:
    """One figure of every builder, fed float32 numbers whose reprs are long (1.9199999570846558)."""
    from explorer.figures import training

    n = len(TOKENS)
    long = np.float32(1.92)
    weights = attention_stack(2, 2, n)
    stats = analysis.layer_norm_stats(*(np.random.default_rng(2).normal(size=(2, 3, n, 8)) * long))
    effect = analysis.ablation_effect(np.ones((n, 4)), np.ones((n, 4)) * long, np.zeros((n, 5)), np.ones((n, 5)) * long)
    figures = {name: fig for name, (fig, _) in token_heatmaps().items()}
    figures.update(
        {
            "entropy": head_measures.entropy_figure(np.full((2, 2), long), float(np.log2(n))),
            "entropy per query": head_measures.entropy_per_query_figure(np.full((1, n), long), TOKENS, ["L1 H1"]),
            "query key": attention.query_key_figure(np.full((1, n), long), weights[0, 0, :1], TOKENS, 0, ["L1 H1"]),
            "ablation": head_measures.ablation_figure(effect, TOKENS, ["L1 H1"]),
            "predictions": predictions.predictions_figure(["a", "b"], np.array([0.6, 0.4], np.float32) * long / 2, "t"),
            "stats": layernorm.norm_stats_figure(stats, 0, TOKENS, "LN 1"),
            "parameters": layernorm.norm_parameters_figure(np.full(8, long), np.full(8, long), "LN 1"),
            "histogram": layernorm.activation_histogram(np.full((n, 8), long), np.full((n, 8), long), "LN 1"),
            "loss (blown up)": training.loss_figure(
                [1, 2, 3],
                np.array([9.2, 2.1267947e7, 1.9199999e8], np.float32),
                [3],
                [np.float32(2.1267947e7)],
                baseline=long,
            ),
            "closeness": training.closeness_figure(np.full((2, 2), long / 2)),
            "embedding plane": training.embedding_plane_figure(np.full((n, 2), long), TOKENS, "plane"),
        }
    )
    return figures


def test_no_figure_prints_a_long_decimal_anywhere():
    """Tick labels, annotations, titles, texts and the fixed part of hover templates: 2-3 digits, never
    a float32 repr; ``%{z:.2f}`` formats in the browser and is not a number yet."""
    import re

    from tests.figures.test_interpret_figures import figure_texts

    long_decimal = re.compile(r"\d\.\d{5,}")
    for name, fig in all_figures().items():
        found = [text for text in figure_texts(fig) if long_decimal.search(text)]
        assert not found, (name, found[:3])


def test_a_blown_up_loss_axis_reads_in_three_digits():
    from explorer.figures import training

    fig = training.loss_figure([1, 2], [9.2, 2.1267947e7], [2], [2.1267947e7])
    assert fig.layout.yaxis.tickformat == ".3~g"  # 2.13e+7, not 21267947
    assert all("~g" in trace.hovertemplate for trace in fig.data)
