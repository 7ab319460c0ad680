"""Interpret page: what the heads do (roles), how far each token reaches (rollout), what each depth would
predict (logit lens), where a head puts queries and keys (query/key map) and where syntax lives (a
part-of-speech probe). Only the open view is computed."""

import numpy as np
import streamlit as st

from explorer import export
from explorer.figures import interpret as figs
from explorer.interpret import analysis
from explorer.interpret.logit_lens import lens_rows, logit_lens
from explorer.interpret.pos_probe import tag_tokens, untagged
from explorer.interpret.qk_map import align, attention_input, queries_and_keys, query_key_map
from explorer.interpret.rollout import attention_rollout
from explorer.model.encoder import hidden_state_names
from explorer.pipeline import NO_OUTPUT_HEAD
from pages.common import (
    INT,
    TEXT,
    WINDOW,
    chart,
    kept,
    model_head_roles,
    one_of,
    open_page,
    pos_probe_job,
    position_picker,
    wait_for,
)

VIEWS = ("Head roles", "Rollout", "Logit lens", "Query/key map", "Part of speech")

sentence = open_page(
    "Interpret",
    "Attention maps show where a head looks; these views ask what it does. Each comes from the interpretability "
    "literature: automatic head roles, attention rollout (Abnar & Zuidema, 2020), the logit lens, AttentionViz's "
    "query/key map and a linear part-of-speech probe.",
)
bundle, config = sentence.bundle, sentence.bundle.config
kept("interpret_view", VIEWS[0], "iview", TEXT, fix=one_of(VIEWS))
view = st.segmented_control("View", VIEWS, key="interpret_view", required=True)
shown = slice(0, min(len(sentence), WINDOW))
labels = sentence.labels[shown]
if len(sentence) > WINDOW:
    st.caption(f"Showing the first {WINDOW} of {len(sentence)} tokens.")
out = sentence.run(causal=bundle.task == "causal")
snapshot_names = hidden_state_names(config)

if view == "Head roles":
    roles, problem = model_head_roles(bundle)
    if roles is None:
        st.info(problem)
        st.stop()
    st.markdown(
        "Each head is labelled by the pattern its attention follows over 64 held-out sentences; the score is the "
        "share of attention the pattern explains (for *broad*, how close the attention is to uniform). "
        "**·** means no pattern fits."
    )
    chart(figs.head_roles_figure(roles), "interpret_roles", json=lambda: export.to_json(roles))
elif view == "Rollout":
    rollout = attention_rollout(out.attention_weights)[shown, shown]
    st.markdown(
        "Per layer, attention averaged over heads, plus the residual connection (0.5·A + 0.5·I), multiplied from the "
        "first layer up: how much each input token (column) reaches each position (row) after all layers."
    )
    chart(
        figs.rollout_figure(rollout, labels),
        "interpret_rollout",
        csv=lambda: export.matrix_csv(rollout, labels, labels, "position"),
    )
elif view == "Logit lens":
    if not config.output_head:
        st.info(NO_OUTPUT_HEAD)
        st.stop()
    rows = lens_rows(logit_lens(bundle.params, config, out.hidden_states[:, shown], k=5), bundle.vocab)
    masks = [p for p in sentence.prepared.mask_positions if p < len(labels)]
    default = masks[0] if masks else len(labels) - 1
    position = position_picker(
        "Position", "interpret_position", "position", labels, default, help="A [MASK] in the text is a good choice."
    )
    st.markdown(
        "The output head applied to the residual stream after every sub-layer: what the model would predict if it "
        "stopped there. The last row is the model's own prediction."
    )
    chart(figs.logit_lens_position_figure(rows, position, snapshot_names, labels), "interpret_lens_position")
    chart(figs.logit_lens_figure(rows, snapshot_names, labels), "interpret_lens", json=lambda: export.to_json(rows))
elif view == "Query/key map":
    c1, c2 = st.columns(2)
    kept("interpret_qk_layer", 0, "qlayer", INT, fix=one_of(range(config.num_layers)))
    kept("interpret_qk_head", 0, "qhead", INT, fix=one_of(range(config.num_heads)))
    layer = c1.selectbox("Layer", range(config.num_layers), key="interpret_qk_layer", format_func=lambda v: f"L{v + 1}")
    head = c2.selectbox("Head", range(config.num_heads), key="interpret_qk_head", format_func=lambda v: f"H{v + 1}")
    x = attention_input(config, out.hidden_states, out.layer_norm_outputs, layer)[shown]
    queries, keys = align(*queries_and_keys(bundle.params, config, x, layer, head))
    qk = query_key_map(queries, keys, out.attention_weights[layer, head][shown, shown])
    st.markdown(
        "This head's query (●) and key (◆) vectors for the sentence, projected together onto their two main "
        "directions. A line joins each query to the key it attends to most: tokens that attend to each other sit close."
    )
    chart(figs.query_key_map_figure(qk, labels, analysis.head_label(layer, head)), "interpret_qk")
else:
    probe = wait_for(pos_probe_job(bundle), "Fitting a part-of-speech probe at every depth")
    if probe is None:  # still fitting (a progress bar follows it), or it could not be (a message says why)
        st.stop()
    st.markdown(
        f"A linear probe per depth predicts each token's part of speech (12 universal tags) from the residual "
        f"stream, trained on {probe.train_tokens:,} tokens of the Brown Corpus and scored on {probe.held_out_tokens:,} "
        "held-out ones. The dashed line knows only the token itself: its most frequent tag. Given the embedding, a "
        "probe reads a snapshot beside the token's embedding: what it gains is what the layers add about context."
    )
    chart(
        figs.probe_accuracy_figure(
            probe.accuracy, probe.baseline_accuracy, list(probe.snapshot_names), probe.given_accuracy
        ),
        "interpret_probe",
        json=lambda: export.to_json(probe.to_dict()),
    )
    best = int(np.argmax(probe.given_accuracy))
    kept("interpret_snapshot", best, "depth", INT, fix=one_of(range(len(snapshot_names))))
    snapshot = st.selectbox(
        "Tag this sentence at",
        range(len(snapshot_names)),
        key="interpret_snapshot",
        format_func=lambda i: snapshot_names[i],
    )
    skip = untagged(sentence.tokenized.pieces[shown], sentence.prepared.special[shown])
    tags, confidence = tag_tokens(probe, out.hidden_states[:, shown], snapshot, skip=skip)
    chart(figs.tag_strip_figure(labels, tags, confidence, snapshot_names[snapshot]), "interpret_tags")
