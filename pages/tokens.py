"""Tokens page: how the text becomes tokens (chips with ids and byte counts), for any tiktoken encoding."""

import streamlit as st

from explorer import export
from explorer.figures.tokens import token_bytes_figure, token_chips_html
from explorer.tokenizer import available_encodings, is_offline
from pages.common import chart, current_bundle, current_text, get_engine, get_tokenizer, prepare, sidebar

sidebar()
st.title("Tokens")
st.caption(
    "The encoder never sees characters: tiktoken cuts the text into byte-level BPE tokens, and the model looks "
    "each one up in its own compact vocabulary. Edit the **Text** box in the sidebar; every page follows it."
)

bundle = current_bundle()
encodings = available_encodings()
st.session_state.setdefault("tokens_encoding", bundle.vocab.encoding)
encoding = st.selectbox(
    "Encoding",
    encodings,
    key="tokens_encoding",
    format_func=lambda name: name if is_offline(name) else f"{name} (needs a download)",
    help="The model was trained with its own encoding; other encodings show how a different tokenizer would cut "
    "the same text.",
)

sentence = prepare(current_text(), bundle)
if sentence is None:
    st.stop()

if encoding == bundle.vocab.encoding:
    tokenized, labels, unknown = sentence.tokenized, sentence.tokenized.labels, sentence.unknown
else:
    with st.spinner(f"Loading {encoding}…"):
        tokenizer = get_tokenizer(encoding)
    if tokenizer.notice:
        st.info(tokenizer.notice)
    tokenized = tokenizer.encode(current_text(), bundle.config.max_len)
    labels, unknown = tokenized.labels, None
    st.info(
        f"Showing **{tokenizer.name}** tokens; the model itself reads **{bundle.vocab.encoding}** tokens on every other page."
    )
    if tokenized.truncation_message():
        st.warning(tokenized.truncation_message())

text_bytes = len(current_text().encode("utf-8", errors="replace"))
col1, col2, col3, col4 = st.columns(4)
col1.metric("Tokens", len(tokenized))
col2.metric("Characters", len(current_text()))
col3.metric("UTF-8 bytes", text_bytes)
col4.metric("Bytes per token", f"{sum(tokenized.byte_counts) / max(len(tokenized), 1):.2f}")

st.subheader("Token chips")
st.caption("Colours only separate neighbours; hover a chip for its position, id and bytes. ␣ is a space, ↵ a newline.")
st.html(token_chips_html(labels, list(tokenized.ids), list(tokenized.byte_counts), unknown))

rows = [
    (i, label, token_id, size, bool(unknown[i]) if unknown is not None else "")
    for i, (label, token_id, size) in enumerate(zip(labels, tokenized.ids, tokenized.byte_counts, strict=True))
]
chart(
    token_bytes_figure(labels, list(tokenized.ids), list(tokenized.byte_counts), unknown),
    key="tokens_bytes",
    csv=lambda: export.rows_csv(["position", "token", "tiktoken_id", "bytes", "unknown_to_model"], rows),
    json=lambda: export.to_json(
        {"encoding": encoding, "tokens": labels, "ids": list(tokenized.ids), "byte_counts": list(tokenized.byte_counts)}
    ),
)
# The id table on demand: the browser loads the table component only when one is first shown, and the
# first page of the app is interactive sooner without it.
st.session_state.setdefault("tokens_table_open", False)
if (
    st.toggle("Show the model ids (rows of the embedding table)", key="tokens_table_open")
    and encoding == bundle.vocab.encoding
):
    st.dataframe(
        {
            "token": labels,
            "tiktoken id": list(tokenized.ids),
            "model id": sentence.model_ids.tolist(),
            "bytes": list(tokenized.byte_counts),
            "[UNK]": sentence.unknown.tolist(),
        },
        key="tokens_table",
    )

# Everything above is on screen; now build (once per process) the compiled engine the other pages use,
# so the first visit to them does not wait for it.
get_engine(bundle.config)
