"""Step through page: one token through one layer, seen through one head, every step with its formula and
its real numbers (``explorer.interpret.trace`` recomputes them from the model's parameters).

The query token and the causal mask are the Attention page's own choices (the same row is outlined there);
the layer and head are this page's, and every choice is kept in the link.
"""

import streamlit as st

from explorer import export
from explorer.figures.trace import step_figure
from explorer.interpret.analysis import token_window
from explorer.interpret.trace import trace_layer
from pages.common import BOOL, INT, WINDOW, chart, choose, kept, one_of, open_page, position_picker

sentence = open_page(
    "Step through",
    "One token through one layer, step by step: its query, every token's key and value, the scores, the softmax, "
    "the heads' output, the residual adds, the layer norms and the feed-forward net, with the model's own numbers.",
)
bundle, labels = sentence.bundle, sentence.labels
config = bundle.config
layers, heads = list(range(1, config.num_layers + 1)), list(range(1, config.num_heads + 1))

c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
kept("step_layer", 1, "layer", INT, fix=one_of(layers))
layer = c1.selectbox("Layer", layers, key="step_layer")
kept("step_head", 1, "head", INT, fix=one_of(heads))
head = c2.selectbox("Head", heads, key="step_head")
with c3:
    query = position_picker(
        "Query token", "attention_query", "query", labels, 0, help="The token whose way through the layer is shown."
    )
kept("attention_causal", False, "causal", BOOL)
c4.markdown("")  # lines the toggle up with the select boxes
causal = c4.toggle(
    "Causal mask", key="attention_causal", help="Each token sees only itself and earlier tokens (GPT-style)."
)

out = sentence.run(causal=causal)
trace = trace_layer(bundle.params, config, out.hidden_states, layer - 1, head - 1, query, causal=causal, tokens=labels)
placement = (
    "post-LN: a layer norm after each residual add"
    if config.layer_norm == "post"
    else ("pre-LN: a layer norm before each sub-layer, the stream itself left un-normalised")
)
st.markdown(
    f"Layer **{layer}** of {config.num_layers}, head **{head}** of {config.num_heads}, query token **{query}** "
    f"({labels[query]}); this model is {placement}." + (" Causal mask on." if causal else "")
)
row = st.container(horizontal=True, gap="small")
if row.button("See this row on the Attention page", key="step_to_attention", icon=":material/visibility:"):
    choose("attention_layers", [layer])
    choose("attention_heads", [head])
    st.switch_page("pages/attention.py")
row.download_button(
    "JSON",
    lambda: export.to_json(
        {"layer": layer, "head": head, "position": query, "causal": causal, "tokens": labels}
        | {"steps": [{"name": s.name, "formula": s.formula, "value": s.value} for s in trace.steps]}
    ),
    file_name="step_through.json",
    mime="application/json",
    key="step_json",
    on_click="ignore",
    type="tertiary",
    icon=":material/download:",
)
window = slice(0, len(labels))
if len(labels) > WINDOW:
    window = token_window(len(labels), query - WINDOW // 2, WINDOW)
    st.caption(
        f"A long text: the pictures show keys {window.start}–{window.stop - 1} of {len(labels)}, around the query."
    )

for number, step in enumerate(trace.steps, 1):
    st.divider()
    text, picture = st.columns([2, 3], vertical_alignment="center")
    with text:
        st.markdown(f"**{number}. {step.title}** · `{step.symbol}` · shape {' × '.join(map(str, step.shape))}")
        st.latex(step.formula)
        st.caption(step.caption)
    with picture:
        chart(step_figure(trace, step, window), key=f"step_{step.name}")
