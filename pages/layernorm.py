"""Layer norm & residual stream page: what every layer norm does to each token, and how the residual
stream grows through the layers."""

import streamlit as st

from explorer import export
from explorer.figures import layernorm as figs
from explorer.interpret import analysis
from explorer.model import describe
from explorer.model.encoder import hidden_state_names, layer_norm_names, layer_norm_param_names
from pages.common import TEXT, chart, kept, one_of, open_page

sentence = open_page(
    "Layer norm & residual stream",
    "Every sub-layer adds its output to the residual stream; a layer norm rescales each token's vector to mean 0 "
    "and standard deviation 1 across the model width, then applies a learned per-dimension scale γ and offset β.",
)
config = sentence.bundle.config
out = sentence.run()
labels = sentence.labels
names = layer_norm_names(config)
stats = analysis.layer_norm_stats(out.layer_norm_inputs, out.layer_norm_outputs)
st.markdown(describe.layer_norm_sentence(config, len(names)))

kept("layernorm_which", names[0], "norm", TEXT, fix=one_of(names))
which = st.selectbox("Layer norm", names, key="layernorm_which")
index = names.index(which)


def stats_rows():
    return [
        (names[n], t, labels[t], *(float(a[n, t]) for a in stats))
        for n in range(len(names))
        for t in range(len(labels))
    ]


chart(
    figs.norm_stats_figure(stats, index, labels, which),
    "layernorm_stats",
    csv=lambda: export.rows_csv(
        ["layer_norm", "position", "token", "mean_in", "std_in", "mean_out", "std_out"], stats_rows()
    ),
)

left, right = st.columns(2)
with left:
    scale, offset = analysis.layer_norm_parameters(sentence.bundle.params, layer_norm_param_names(config)[index])
    chart(
        figs.norm_parameters_figure(scale, offset, which),
        "layernorm_params",
        csv=lambda: export.rows_csv(
            ["dim", "scale", "offset"],
            [(d, float(s), float(o)) for d, (s, o) in enumerate(zip(scale, offset, strict=True))],
        ),
    )
with right:
    chart(
        figs.activation_histogram(out.layer_norm_inputs[index], out.layer_norm_outputs[index], which),
        "layernorm_histogram",
        json=lambda: export.to_json(
            {"tokens": labels, "before": out.layer_norm_inputs[index], "after": out.layer_norm_outputs[index]}
        ),
    )

chart(
    figs.norm_overview_figure(stats, labels, names),
    "layernorm_overview",
    csv=lambda: export.matrix_csv(stats.std_in, names, labels, "layer norm \\ token"),
)

st.subheader("Residual stream")
st.caption("The norm of each token's vector after the embedding and after every sub-layer.")
stages = hidden_state_names(config)
norms = analysis.residual_norms(out.hidden_states)
chart(
    figs.residual_norm_figure(norms, stages, labels),
    "layernorm_residual",
    csv=lambda: export.matrix_csv(norms, stages, labels, "stage \\ token"),
)
