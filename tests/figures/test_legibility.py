"""What a reader needs to read a figure: a legend that never covers its title, key labels that clear each
other, cell text that contrasts with its cell, token labels that stand out from a cloud of points."""

from __future__ import annotations

import numpy as np

from explorer.figures import TITLE_PX, attention, embeddings, finish, interpret, legend_rows, model
from explorer.interpret import analysis


def test_a_long_legend_gets_the_rows_it_wraps_to_under_the_title():
    assert legend_rows(["a", "b"], 420) == 1
    assert legend_rows(["layer 1 · attention"] * 8, 420) >= 4
    assert legend_rows([], 420) == 1
    # MiniLM's parameters: eight groups over a column of ~500 px.
    groups = ["embedding"] + [f"layer {n}" for n in range(1, 7)] + ["output head"]
    rows = [(group, "module", 1000 * (i + 1)) for i, group in enumerate(groups)]
    fig = model.parameter_figure(rows)
    layout = fig.layout
    expected = legend_rows(groups, 420)
    assert expected >= 2 and layout.margin.t >= TITLE_PX + 22 * expected
    assert layout.title.yref == "container" and layout.title.y == 1.0 and layout.title.yanchor == "top"
    assert layout.legend.yref == "container" and layout.legend.yanchor == "top"
    # The legend starts under the title's strip, in pixels from the top of the figure.
    assert (1.0 - layout.legend.y) * layout.height >= TITLE_PX - 1e-6
    # A figure whose legend sits elsewhere is left as it is.
    below = finish({"data": [], "layout": {"legend": {"orientation": "h", "y": -0.2}}}, "t", 300)
    assert below.layout.legend.y == -0.2 and below.layout.legend.yref is None


def test_angled_key_labels_clear_their_neighbours_in_a_narrow_panel():
    """Compare draws each sentence in a half-width column: 21 tokens there once overlapped."""
    for length in (5, 21, 40, 96):
        weights = np.full((1, length, length), 1 / length)
        fig = attention.heads_figure(weights, [f"t{i}" for i in range(length)], ["h"], columns=1, width=440)
        domain = fig.layout.xaxis.domain
        plot_width = fig.layout.width - fig.layout.margin.l - fig.layout.margin.r
        cell = plot_width * (domain[1] - domain[0]) / length
        assert fig.layout.xaxis.tickfont.size <= 0.85 * cell + 1e-6, length


def test_logit_lens_cells_are_labelled_in_a_contrasting_colour():
    rows = [
        [
            {"token": f"w{t}{s}", "probability": p, "top": [{"token": "a", "probability": p}]}
            for t, p in enumerate((0.05, 0.9))
        ]
        for s in range(3)
    ]
    fig = interpret.logit_lens_figure(rows, ["emb", "L1", "L2"], ["x", "y"])
    heatmap, text = fig.data
    assert heatmap.texttemplate is None  # its own text would take the figures' mid-grey
    assert text.mode == "text" and text.textfont.size >= 12 and text.hoverinfo == "skip"
    colours = dict(zip(zip(text.x, text.y, strict=True), text.textfont.color, strict=True))
    assert colours[("0 x", "emb")] == "#ffffff" and colours[("1 y", "emb")] == "#000000"  # dark cell, light cell
    position = interpret.logit_lens_position_figure(rows, 1, ["emb", "L1", "L2"], ["x", "y"])
    assert position.data[1].textfont.size >= 12 and list(position.data[1].text) == ["a"] * 3


def test_the_sentence_stands_out_of_the_vocabulary_cloud():
    rng = np.random.default_rng(0)
    cloud = analysis.pca(rng.normal(size=(500, 8)), 2)
    here = analysis.project_onto(rng.normal(size=(4, 8)), cloud)
    fig = embeddings.projection_figure(cloud, [str(i) for i in range(500)], "t", here, ["a", "b", "c", "d"])
    vocabulary, sentence = fig.data
    assert vocabulary.marker.opacity < 0.5 < sentence.marker.opacity
    assert sentence.textfont.color == sentence.marker.color != vocabulary.marker.color
    assert sentence.textfont.size >= 12 and sentence.textfont.weight == "bold"
    assert list(sentence.textposition) == ["top center", "bottom center"] * 2  # neighbours alternate
