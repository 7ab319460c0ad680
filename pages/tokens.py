"""Tokens page: how the text becomes the model's tokens (chips with ids and byte counts), and how a full
tiktoken encoding would cut the same text."""

import streamlit as st

from explorer import export
from explorer.figures.tokens import token_bytes_figure, token_chips_html
from explorer.model import describe
from explorer.text.tokenizer import DEFAULT_ENCODING, available_encodings, differences, display_text, is_offline
from pages.common import (
    BOOL,
    OPTIONAL_TEXT,
    chart,
    current_bundle,
    current_text,
    get_engine,
    get_tokenizer,
    kept,
    one_of,
    prepare,
    sidebar,
    start_here,
)

sidebar()
st.title("Tokens")
bundle = current_bundle()
st.caption(
    f"{describe.tokenization_sentence(bundle.vocab)} Edit the **Text** box in the sidebar; every page follows it. "
    f"Write **{bundle.vocab.mask_text}** where a word is missing and the **Fill mask** page shows what the model "
    "guesses."
)

start_here()

sentence = prepare(current_text(), bundle)
if sentence is None:
    st.stop()
tokenized, labels, unknown = sentence.tokenized, sentence.labels, sentence.unknown

text_bytes = len(current_text().encode("utf-8", errors="replace"))
col1, col2, col3, col4 = st.columns(4)
col1.metric("Tokens", len(tokenized))
col2.metric("Characters", len(current_text()))
col3.metric("UTF-8 bytes", text_bytes)
col4.metric("Bytes per token", f"{sum(tokenized.byte_counts) / max(len(tokenized), 1):.2f}")

st.subheader("The model's tokens")
st.caption(
    f"{describe.vocabulary_sentence(bundle.vocab)} Colours only separate neighbours; hover a chip for its position, "
    "id and bytes. ␣ is a space, ↵ a newline."
)
ids = [tid if tid >= 0 else None for tid in tokenized.ids]
st.html(token_chips_html(labels, ids, list(tokenized.byte_counts), unknown))
rows = [
    (i, label, token_id, int(model_id), size, bool(unk))
    for i, (label, token_id, model_id, size, unk) in enumerate(
        zip(labels, ids, sentence.model_ids, tokenized.byte_counts, unknown, strict=True)
    )
]
chart(
    token_bytes_figure(labels, ids, list(tokenized.byte_counts), unknown),
    key="tokens_bytes",
    csv=lambda: export.rows_csv(["position", "token", "tiktoken_id", "model_id", "bytes", "unknown"], rows),
    json=lambda: export.to_json(
        {
            "encoding": bundle.vocab.encoding,
            "tokens": labels,
            "ids": ids,
            "model_ids": sentence.model_ids.tolist(),
            "byte_counts": list(tokenized.byte_counts),
        }
    ),
)
# The id table on demand: the browser loads the table component only when one is first shown, and the
# first page of the app is interactive sooner without it.
kept("tokens_table_open", False, "ids", BOOL)
if st.toggle("Show the model ids (rows of the embedding table)", key="tokens_table_open"):
    st.dataframe(
        {
            "token": labels,
            f"{bundle.vocab.encoding} id": ids,
            "model id": sentence.model_ids.tolist(),
            "bytes": list(tokenized.byte_counts),
            "[UNK]": unknown.tolist(),
        },
        key="tokens_table",
    )

st.subheader("Against a full tiktoken encoding")
encodings = available_encodings()
# A model of a tiktoken subset compares with its own full encoding; any other with the default one.
compare_with = bundle.vocab.encoding if bundle.vocab.encoding in encodings else DEFAULT_ENCODING
kept(
    "tokens_encoding",
    compare_with,
    "encoding",
    OPTIONAL_TEXT,
    fix=lambda name: name if name is None else one_of(encodings)(name),
)
encoding = st.selectbox(
    "Encoding",
    encodings,
    key="tokens_encoding",
    format_func=lambda name: name if is_offline(name) else f"{name} (needs a download)",
    help="How a whole tiktoken encoding (100k+ tokens) cuts the same text.",
)
if encoding is not None:
    with st.spinner(f"Loading {encoding}…"):
        tokenizer = get_tokenizer(encoding)
    if tokenizer.notice:
        st.info(tokenizer.notice)
    full = tokenizer.encode(current_text(), bundle.config.max_len)
    full_ids = [tid if tid >= 0 else None for tid in full.ids]
    st.html(token_chips_html(full.labels, full_ids, list(full.byte_counts), None))
    if not (tokenized.truncated or full.truncated):
        # tokenizer.name: the encoding actually used (one that needs a download falls back to cl100k_base).
        changed = differences(full, sentence.prepared.text_tokens)
        if not changed:
            st.success(describe.same_cuts_sentence(bundle.vocab, tokenizer.name))
        else:
            st.info(describe.differences_sentence(bundle.vocab, tokenizer.name, len(changed)))
            st.dataframe(
                {
                    tokenizer.name: [" ".join(display_text(p) for p in a) for a, _ in changed],
                    "model": [" ".join(display_text(p) for p in b) for _, b in changed],
                },
                key="tokens_differences",
            )

# Everything above is on screen; now build (once per process) the compiled engine the other pages use,
# so the first visit to them does not wait for it.
get_engine(bundle.config)
