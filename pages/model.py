"""Model page: the architecture with the shape of the data at every step, parameter counts, the config,
and what jit made of the forward pass (jaxpr, XLA cost analysis, compile time, cache hits)."""

import time

import streamlit as st

from explorer import export
from explorer.figures import model as figs
from explorer.interpret import shapes
from explorer.model import describe
from explorer.model.encoder import count_parameters
from explorer.model.inference import bucket_for
from pages.common import chart, current_bundle, current_sentence, get_engine, sidebar, warmup_report

sidebar()
st.title("Model")
st.caption("Pay attention to the shape of the data: every step below shows the tensor it makes for *your* sentence.")

bundle = current_bundle()
config = bundle.config
sentence = current_sentence(messages=False)
length = len(sentence) if sentence is not None else 1
if sentence is None:
    st.info("The text is empty, so shapes are shown for a single token.")

steps = shapes.shape_walk(config, length)
st.markdown(
    f"**T** = {length} tokens · **D** = {config.d_model} · **H** = {config.num_heads} heads of **K** = {config.key_size} · "
    f"**F** = {config.ffn_size} · **L** = {config.num_layers} layers · **V** = {config.vocab_size}"
)
chart(
    figs.architecture_figure(steps),
    "model_architecture",
    csv=lambda: export.rows_csv(
        ["stage", "operation", "symbol", "shape"], [(s.stage, s.operation, s.symbol, str(s.shape)) for s in steps]
    ),
)

left, right = st.columns([3, 2])
with left:
    rows = shapes.parameter_groups(count_parameters(bundle.params))
    chart(
        figs.parameter_figure(rows),
        "model_parameters",
        csv=lambda: export.rows_csv(["group", "module", "parameters"], rows),
    )
with right:
    st.subheader("Configuration")
    st.dataframe(
        {"field": list(config.to_dict()), "value": [str(v) for v in config.to_dict().values()]},
        key="model_config_table",
        hide_index=True,
    )
    st.markdown(f"**Source:** {bundle.source}  \n**Task:** {bundle.task or 'none (untrained)'}")
    if bundle.info:
        with st.expander("Training info"):
            facts = describe.training_summary(bundle.info)
            st.dataframe(
                {"fact": [f for f, _ in facts], "value": [v for _, v in facts]},
                key="model_training_info",
                hide_index=True,
            )
            st.download_button(
                "All recorded facts (JSON)",
                lambda: export.to_json(bundle.info),
                file_name="training_info.json",
                key="model_info_json",
                on_click="ignore",
                type="tertiary",
                icon=":material/download:",
            )

st.subheader("What jit made of it")
engine = get_engine(config)
bucket = bucket_for(length, engine.buckets)
st.markdown(
    f"Inputs are padded to a fixed set of lengths ({', '.join(map(str, engine.buckets))}) so typing never triggers a "
    f"compile; your {length} tokens run in the **{bucket}**-token program."
)
report = warmup_report(config)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Programs compiled", engine.stats.traces)
c2.metric("Forward calls", engine.stats.calls)
c3.metric("Cache hits", max(engine.stats.calls - engine.stats.traces, 0))
if report and report.seconds:
    c4.metric(
        "Warm-up compile time",
        f"{sum(report.seconds.values()):.2f} s",
        help="Per bucket: " + ", ".join(f"{k}: {v:.2f} s" for k, v in sorted(report.seconds.items())),
    )


@st.cache_resource(show_spinner="Lowering and compiling the forward pass…", max_entries=16)
def lowered(_engine, config_key, bucket_length: int, _params):
    """The jaxpr and cost analysis are the same for every user of a config; keyed by config and bucket."""
    start = time.perf_counter()
    jaxpr, cost = _engine.lower_text(_params, bucket_length)
    return jaxpr, cost, time.perf_counter() - start


st.session_state.setdefault("model_show_jit", False)
if st.toggle("Show the jaxpr and XLA's cost analysis", key="model_show_jit"):
    jaxpr, cost, seconds = lowered(engine, config, bucket, bundle.params)
    flops = cost.get("flops", float("nan"))
    bytes_accessed = cost.get("bytes accessed", float("nan"))
    m1, m2, m3 = st.columns(3)
    m1.metric("FLOPs (XLA estimate)", f"{flops:,.0f}")
    m2.metric("Bytes accessed", f"{bytes_accessed:,.0f}")
    m3.metric("Lower + compile time", f"{seconds:.2f} s", help="Measured once per config and bucket, then cached.")
    st.download_button(
        "Cost analysis (JSON)",
        lambda: export.to_json(cost),
        file_name="cost_analysis.json",
        key="model_cost_json",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
    )
    with st.expander(f"jaxpr of the forward pass at {bucket} tokens ({jaxpr.count(chr(10))} lines)"):
        st.code(jaxpr, language=None)
    st.download_button(
        "jaxpr (text)",
        jaxpr,
        file_name=f"forward_{bucket}.jaxpr.txt",
        key="model_jaxpr_txt",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
    )
