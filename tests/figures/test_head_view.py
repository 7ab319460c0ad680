"""The head view as an HTML/SVG drawing: a line per kept weight, classed by its query and key so that one
CSS rule per token keeps only that token's lines on hover; the user's token text escaped."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.figures import head_view
from explorer.interpret import analysis

LABELS = ["The", "␣cat", "␣<b>sat</b>", "␣the"]


def lines_of(seed: int = 0, head: str = "L1 H1") -> analysis.HeadViewLines:
    weights = np.random.default_rng(seed).dirichlet(np.ones(4), size=4)  # [T, T] rows sum to 1
    return analysis.head_view_lines(weights, head, threshold=0.0)


def test_every_kept_weight_is_one_line_classed_by_its_query_and_key():
    heads = [lines_of(0, "L1 H1"), lines_of(1, "L1 H2")]
    page = head_view.head_view_html(heads, LABELS)
    drawn = re.findall(r'<line class="ln q(\d+) k(\d+)"', page)
    expected = [(int(q), int(k)) for item in heads for q, k in zip(item.queries, item.keys, strict=True)]
    assert [(int(q), int(k)) for q, k in drawn] == expected and len(drawn) == 32
    # A tooltip per line with the weight; one colour per head; the strongest line of a head fully opaque.
    assert page.count("<title>L1 H2: ") == 16 and "→ 1 ␣cat: " in page
    assert len(set(re.findall(r'stroke="(#[0-9a-f]{6})"', page))) == 2
    assert 'stroke-opacity="1.0"' in page
    # Hover: for each token, a rule fades the lines that are not its own (queries and keys alike).
    for i in range(len(LABELS)):
        assert f":has(.qt{i}:hover) .ln:not(.q{i})" in page and f":has(.kt{i}:hover) .ln:not(.k{i})" in page
    assert page.count('class="tok qt') == page.count('class="tok kt') == len(LABELS)


def test_token_text_is_escaped_and_nothing_is_fetched_or_run():
    page = head_view.head_view_html([lines_of()], LABELS, focus=2, start=10)
    assert "<b>sat" not in page and "&lt;b&gt;sat&lt;/b&gt;" in page
    assert "<script" not in page and "http" not in page and "src=" not in page
    assert "query 12: ␣&lt;b&gt;sat" in page  # positions count from the window's start
    assert re.search(rf'class="tok qt2"[^>]*fill="{head_view.FOCUS_COLOUR}"', page)


def test_a_line_beyond_the_sentence_is_an_error_and_the_height_fits_every_token():
    with pytest.raises(ValueError, match="same sentence"):
        head_view.head_view_html([lines_of()], LABELS[:2])
    page = head_view.head_view_html([lines_of()], LABELS, dropped=5)
    assert "5 weakest lines not drawn" in page
    svg_height = int(re.search(r'<svg width="\d+" height="(\d+)"', page).group(1))
    assert head_view.head_view_height(len(LABELS), dropped=5) >= svg_height + 20


def test_the_content_span_leaves_out_the_added_tokens_at_the_ends():
    assert analysis.content_span(np.array([True, False, False, True])) == slice(1, 3)
    assert analysis.content_span(np.array([False, False])) == slice(0, 2)
    assert analysis.content_span(np.array([True, True])) == slice(0, 2)
    assert analysis.content_span(np.array([True, False, True, False, True])) == slice(1, 4)  # inner ones stay
