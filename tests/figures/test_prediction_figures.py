"""Guesses as people read them: every bar prints its probability, and many masks are one table of rows."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.figures import predictions


def test_every_bar_prints_its_probability_inside_the_axis():
    probs = np.array([0.62, 0.2, 0.004, 0.0004])
    fig = predictions.predictions_figure(["door", "hall", "tractor", "x"], probs, "Top")
    bar = fig.data[0]
    assert list(bar.text) == ["62%", "20%", "0.4%", "<0.1%"]
    assert bar.textposition == "outside" and bar.cliponaxis is False
    assert fig.layout.xaxis.range[1] > 1.0 and max(fig.layout.xaxis.tickvals) == 1  # room for "100%"


@pytest.mark.parametrize(
    "position,expected",
    [(3, "She opened the ▢ and walked into…"), (0, "▢ opened the [MASK]…"), (9, "…into the room ▢")],
)
def test_a_masks_context_is_the_text_around_it(position, expected):
    spans = ["She", " opened", " the", " [MASK]", " and", " walked", " into", " the", " room", " [MASK]"]
    spans[0] = "[MASK]" if position == 0 else "She"
    assert predictions.mask_context(spans, position) == expected
    with pytest.raises(ValueError, match="outside"):
        predictions.mask_context(spans, 10)


def test_many_masks_make_one_table_of_equal_columns():
    spans = ["", "a", " [MASK]", " b", " [MASK]", ""]  # added tokens cover no text
    fills = [(2, [(" cat", 0.5), (" dog", 0.25), (" x", 0.0005)]), (4, [("##s", 0.9)])]
    table = predictions.fill_table(fills, spans)
    assert {len(column) for column in table.values()} == {2}
    assert table["mask"] == [1, 2] and table["position"] == [2, 4]
    assert table["best guess"] == ["cat", "##s"] and table["probability"] == [0.5, 0.9]
    assert table["other guesses"] == ["dog 25% · x <0.1%", ""]
    assert table["context"] == ["a ▢ b [MASK]", "a [MASK] b ▢"]
    with pytest.raises(ValueError, match="no guesses"):
        predictions.fill_table([(2, [])], spans)
