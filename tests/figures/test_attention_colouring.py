"""Long texts: attention coloured relative to uniform keeps broad heads readable, and the end of the model's
training windows is drawn where it falls; the overview grid names keys only where they fit."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.figures import attention, attention_colour
from explorer.interpret import analysis
from tests.figures.test_figures import values

LIMIT = analysis.RELATIVE_LIMIT


def one_hot(length: int) -> np.ndarray:
    weights = np.zeros((length, length))
    weights[np.arange(length), np.maximum(np.arange(length) - 1, 0)] = 1.0  # previous token
    return weights


def test_relative_to_uniform_is_zero_for_an_even_spread_at_any_length():
    for length in (8, 64, 512):
        uniform = np.full((length, length), 1 / length)
        np.testing.assert_allclose(analysis.relative_to_uniform(uniform), 0.0, atol=1e-9)
        relative = analysis.relative_to_uniform(one_hot(length))
        assert relative[5, 4] == min(np.log2(length), LIMIT) and relative[5, 6] == -LIMIT
    # Causal: query i had i + 1 keys; the keys after it are not coloured.
    causal = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    relative = analysis.relative_to_uniform(causal, causal=True)
    np.testing.assert_allclose(np.tril(relative), 0.0, atol=1e-9)
    assert np.isnan(relative[np.triu_indices(4, 1)]).all()
    # A window of a longer sentence: the keys a query had are the whole sentence's.
    window = np.full((3, 3), 1 / 100)
    np.testing.assert_allclose(analysis.relative_to_uniform(window, start=50, total=100), 0.0, atol=1e-9)
    assert np.isinf(analysis.relative_to_uniform(np.zeros((2, 2)), limit=None)).all()
    with pytest.raises(ValueError, match="does not fit"):
        analysis.relative_to_uniform(window, total=2)


def test_a_long_text_opens_on_the_relative_colouring():
    assert attention_colour.default_colouring(attention_colour.RELATIVE_FROM) == attention_colour.WEIGHT
    assert attention_colour.default_colouring(attention_colour.RELATIVE_FROM + 1) == attention_colour.RELATIVE


def test_relative_colouring_puts_uniform_in_the_middle_and_a_focused_head_at_the_top():
    length = 512
    stack = np.stack([np.full((length, length), 1 / length), one_hot(length)])[:, :96, :96]  # a window
    labels = [f"t{i}" for i in range(96)]
    fig = attention.heads_figure(stack, labels, ["broad", "prev"], colouring=attention_colour.RELATIVE, total=length)
    scale = fig.layout.coloraxis
    middle = (scale.cmin + scale.cmax) / 2
    broad, prev = (values(trace.z) for trace in fig.data)
    np.testing.assert_allclose(broad, middle, atol=1e-5)  # every cell of a uniform head: the middle colour
    assert prev[10, 9] == scale.cmax and prev[10, 11] == scale.cmin
    weights = values(fig.data[1].customdata)[..., 0]
    np.testing.assert_allclose(weights, stack[1], atol=1e-7)  # hover still reads the weight
    assert "customdata[0]" in fig.data[0].hovertemplate and "uniform" in fig.data[0].hovertemplate
    assert "uniform" in fig.layout.coloraxis.colorbar.ticktext
    plain = attention.heads_figure(stack, labels, ["broad", "prev"])
    assert plain.layout.coloraxis.cmax == 1.0 and plain.data[0].customdata is None
    np.testing.assert_allclose(values(plain.data[0].z), 1 / length, rtol=1e-6)  # the bottom of 0-1: dark
    heatmap = attention.attention_heatmap(stack[1], labels, "t", colouring=attention_colour.RELATIVE, total=length)
    assert values(heatmap.data[0].z)[10, 9] == LIMIT and heatmap.data[0].zmin == -LIMIT


def lines(fig) -> list[tuple[float, float, float, float]]:
    return [(s.x0, s.x1, s.y0, s.y1) for s in fig.layout.shapes if s.line.dash == "dash"]


def test_the_end_of_the_training_windows_is_drawn_where_it_falls():
    labels = [f"t{i}" for i in range(96)]
    stack = np.stack([one_hot(96)])
    fig = attention.heads_figure(stack, labels, ["h"], trained=64)
    assert lines(fig) == [(63.5, 63.5, -0.5, 95.5), (-0.5, 95.5, 63.5, 63.5)]  # a key column and a query row
    assert lines(attention.heads_figure(stack, labels, ["h"], trained=None)) == []
    assert lines(attention.heads_figure(stack, labels, ["h"], trained=100)) == []  # beyond what is shown
    # A window from position 40: the line moves with it.
    assert lines(attention.heads_figure(stack, labels, ["h"], start=40, trained=64))[0][0] == 23.5
    two = attention.heads_figure(np.stack([one_hot(96)] * 2), labels, ["a", "b"], trained=64)
    assert {(s.xref, s.yref) for s in two.layout.shapes} == {(t.xaxis, t.yaxis) for t in two.data}  # every panel
    heatmap = attention.attention_heatmap(one_hot(96), labels, "t", trained=64)
    assert lines(heatmap)[0][0] == 63.5
    # The overview grid pools 512 positions into 48 blocks: the line falls between blocks.
    grid = attention.attention_grid(np.zeros((1, 2, 512, 512)) + 1 / 512, [str(i) for i in range(512)], trained=64)
    (x0, _, _, _), _ = lines(grid)[:2]
    block_starts = [int(name.split("–")[0]) for name in grid.data[0].x]
    assert block_starts[int(x0 + 0.5)] >= 64 > block_starts[int(x0 - 0.5)]
    assert len(lines(grid)) == 4  # both panels


def test_the_overview_grid_names_keys_only_where_each_gets_room():
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(17), size=(1, 12, 17))  # MiniLM: 12 heads of a 17-token sentence
    wide = attention.attention_grid(weights, [f"w{i}" for i in range(17)])
    assert not wide.layout.xaxis.showticklabels and "hover" in wide.layout.title.text
    few = attention.attention_grid(weights[:, :4], [f"w{i}" for i in range(17)])
    assert few.layout.xaxis.showticklabels  # 4 panels of 17 tokens: room for every key's name
