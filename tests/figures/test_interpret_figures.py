"""Interpretability figures: every token labelled, hover names tokens, no long decimals anywhere."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explorer.figures import interpret
from explorer.interpret import analysis, head_roles, logit_lens, qk_map, rollout
from tests.interpret.test_interpret import small_vocab, tiny_run

LABELS = ["The", "␣cat", "␣sat", "␣the", "."]
LONG_DECIMAL = re.compile(r"\d\.\d{5,}")


def figure_texts(fig) -> list[str]:
    """Every string a figure carries (titles, labels, hover templates and texts, annotations)."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key != "bdata":  # numpy arrays travel as base64 typed arrays: numbers, not text
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
        elif isinstance(node, np.ndarray) and node.dtype.kind in "OU":
            walk(node.tolist())

    walk(fig.to_dict())
    return found


def lens_rows_for(length: int = 5):
    config, params, result = tiny_run("post", length)
    vocab = small_vocab()
    rows = logit_lens.lens_rows(logit_lens.logit_lens(params, config, result.hidden_states, k=3), vocab)
    return config, result, rows


def all_interpret_figures() -> dict:
    from explorer.model.encoder import hidden_state_names

    config, result, rows = lens_rows_for()
    names = hidden_state_names(config)
    roles = head_roles.head_roles([result.attention_weights], [list(range(5))], [LABELS])
    x = qk_map.attention_input(config, result.hidden_states, result.layer_norm_outputs, 0)
    queries, keys = qk_map.queries_and_keys(tiny_run("post", 5)[1], config, x, 0, 1)
    mapped = qk_map.query_key_map(queries, keys, result.attention_weights[0, 1])
    rng = np.random.default_rng(0)
    return {
        "roles": interpret.head_roles_figure(roles),
        "timeline": interpret.role_timeline_figure([0, 100, 200], rng.uniform(size=(3, 2, 4)) / 3, "self", roles),
        "rollout": interpret.rollout_figure(rollout.attention_rollout(result.attention_weights), LABELS),
        "lens": interpret.logit_lens_figure(rows, names, LABELS),
        "lens position": interpret.logit_lens_position_figure(rows, 2, names, LABELS),
        "probe": interpret.probe_accuracy_figure(rng.uniform(size=5) / 3, 1 / 3, names, rng.uniform(size=5) / 3),
        "tags": interpret.tag_strip_figure(
            LABELS, ["DET", "NOUN", "VERB", "DET", "."], rng.uniform(size=5) / 3, names[2]
        ),
        "q/k map": interpret.query_key_map_figure(mapped, LABELS, "L1 H2"),
    }


def test_no_figure_shows_long_decimals():
    figures = all_interpret_figures()
    assert LONG_DECIMAL.search("p 0.123456") and not LONG_DECIMAL.search("p 0.1234 or 12.5%")
    assert any("strongest key" in text for text in figure_texts(figures["q/k map"]))  # hover texts are seen
    for name, fig in figures.items():
        long = [text for text in figure_texts(fig) if LONG_DECIMAL.search(text)]
        assert not long, (name, long[:3])


def test_rollout_heatmap_labels_every_token_on_both_axes():
    fig = all_interpret_figures()["rollout"]
    trace = fig.data[0]
    assert list(trace.x) == list(trace.y) == analysis.unique_labels(LABELS)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.yaxis.dtick == 1
    assert fig.layout.xaxis.showticklabels and fig.layout.yaxis.showticklabels
    assert "%{z:.2f}" in trace.hovertemplate
    with pytest.raises(ValueError, match="token labels"):
        interpret.rollout_figure(np.eye(5), LABELS[:4])


def test_logit_lens_figures_name_depths_and_tokens():
    from explorer.model.encoder import hidden_state_names

    figures = all_interpret_figures()
    names = hidden_state_names(tiny_run("post", 5)[0])
    lens = figures["lens"].data[0]
    assert list(lens.y) == names and list(lens.x) == analysis.unique_labels(LABELS)
    assert figures["lens"].layout.xaxis.dtick == 1
    position = figures["lens position"]
    assert list(position.data[0].x) == ["#1", "#2", "#3"] and "2 ␣sat" in position.layout.title.text
    _, _, rows = lens_rows_for()
    with pytest.raises(ValueError, match="outside the sentence"):
        interpret.logit_lens_position_figure(rows, 5, names, LABELS)
    with pytest.raises(ValueError, match="token labels"):
        interpret.logit_lens_figure(rows, names, LABELS[:3])


def test_role_figures_show_badges_and_one_line_per_head():
    figures = all_interpret_figures()
    badges = {head_roles.role_badge(r) for r in (*head_roles.ROLES, head_roles.NONE)}
    assert {t for row in figures["roles"].data[0].text for t in row} <= badges
    assert "L1 H1" in figures["roles"].data[0].hovertext[0][0]
    timeline = figures["timeline"]
    assert len(timeline.data) == 8 and timeline.data[5].name.startswith("L2 H2 ")
    assert list(timeline.data[0].x) == [0, 100, 200] and timeline.layout.xaxis.title.text == "training step"
    with pytest.raises(ValueError, match="S = 2 steps"):
        interpret.role_timeline_figure([0, 1], np.zeros((3, 2, 4)), "self")


def test_probe_and_tag_strip_figures():
    figures = all_interpret_figures()
    probe = figures["probe"]
    assert [t.name for t in probe.data] == [
        "linear probe",
        "linear probe given the embedding",
        "most frequent tag of the token",
    ]
    alone = interpret.probe_accuracy_figure(np.full(3, 0.5), 0.4, ["a", "b", "c"])
    assert [t.name for t in alone.data] == ["linear probe", "most frequent tag of the token"]
    with pytest.raises(ValueError, match="one per snapshot"):
        interpret.probe_accuracy_figure(np.full(3, 0.5), 0.4, ["a", "b", "c"], np.full(2, 0.5))
    strip = figures["tags"]
    assert [t.name for t in strip.data] == ["DET", "NOUN", "VERB", "."]  # one legend entry per tag
    assert list(strip.layout.xaxis.categoryarray) == analysis.unique_labels(LABELS)  # tokens stay in order
    assert list(strip.data[0].text) == ["The", "␣the"] and "DET" in strip.data[0].hovertemplate
    with pytest.raises(ValueError, match="token labels"):
        interpret.tag_strip_figure(LABELS, ["DET"], np.ones(1), "x")
    # Tokens the probe does not tag ([CLS], [SEP]) are one faint "no tag" entry, with no tag in their hover.
    specials = ["[CLS]", "the", "cat", "[SEP]"]
    strip = interpret.tag_strip_figure(specials, [None, "DET", "NOUN", None], np.array([np.nan, 0.9, 0.8, np.nan]), "x")
    untagged = next(t for t in strip.data if t.name == interpret.NO_TAG)
    assert list(untagged.text) == ["[CLS]", "[SEP]"] and "no tag" in untagged.hovertemplate
    assert not any(tag in untagged.hovertemplate for tag in interpret.TAG_COLOURS)


def test_query_key_map_figure_names_tokens_in_hover():
    fig = all_interpret_figures()["q/k map"]
    edges, queries, keys = fig.data
    assert edges.mode == "lines" and len(edges.x) == 3 * len(LABELS)
    assert queries.hovertext[1].startswith("query 1 ␣cat") and "strongest key" in queries.hovertext[1]
    assert list(keys.hovertext) == [f"key {a}" for a in analysis.unique_labels(LABELS)]
    assert "PC1" in fig.layout.xaxis.title.text
