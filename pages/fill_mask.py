"""Fill mask page: what a masked-token model guesses at every [MASK] of the text (the fill-mask pipeline)."""

import re

import streamlit as st

from explorer import export
from explorer.figures.predictions import fill_table, predictions_figure
from explorer.interpret import analysis
from explorer.pipeline import fill_mask, prediction_at, token_texts, top_predictions
from explorer.text.tokenizer import MASK_TEXT, display_text
from pages.common import (
    INT,
    TEXT_KEY,
    chart,
    current_bundle,
    current_text,
    kept,
    one_of,
    position_picker,
    prepare,
    sidebar,
)

CHARTS_UP_TO = 3  # masks drawn as charts side by side; more become one table

EXAMPLES = (
    "The cat sat on the [MASK].",
    "She opened the [MASK] slowly.",
    "The United [MASK] of America.",
    "After school we went [MASK].",
)


def use_example(text: str) -> None:
    st.session_state[TEXT_KEY] = text


def best_guess(text: str, guesses: list[str], mask_texts: list[str]) -> str:
    """The text with each mask (typed as any of ``mask_texts``), in order, replaced by its top guess in bold:
    the text as typed, whatever the vocabulary's pieces look like (`` door``, ``door``, ``##s``)."""
    pattern = re.compile("|".join(re.escape(m) for m in dict.fromkeys(mask_texts)))
    words = iter(guesses)

    def bold(found: re.Match) -> str:
        word = next(words, None)
        if word is None:
            return found.group(0)  # a mask past the model's maximum length
        core = word.strip().removeprefix("##")
        return f"**{core}**" if core else found.group(0)

    return pattern.sub(bold, text).replace("\n", " ")


sidebar()
st.title("Fill mask")
bundle = current_bundle()
mask = bundle.vocab.mask_text  # what this model's tokenizer reads as its mask token
st.caption(
    f"Write **{mask}** in the text where a word is missing: a masked-token model was trained to "
    "guess hidden tokens from both sides, and here it guesses yours. Every mask is hidden at once, as in BERT."
)
cols = st.columns(len(EXAMPLES))
for i, (column, example) in enumerate(zip(cols, EXAMPLES, strict=True)):
    column.button(example, key=f"fill_example_{i}", on_click=use_example, args=(example,), use_container_width=True)

sentence = prepare(current_text(), bundle)
if sentence is None:
    st.stop()
if not bundle.fills_masks:
    st.warning(
        f"The model shown ({bundle.source}) was not trained to fill masks; choose a masked-token model (the "
        "default, a pretrained masked-LM, or train one with the mlm task on the Train page)."
    )
    st.stop()
kept("fill_top", 5, "top", INT, fix=one_of(range(1, 21)))
top = st.slider("Guesses per mask", min_value=1, max_value=20, key="fill_top")
if not sentence.prepared.mask_positions:
    st.info(f"The text has no {mask}. Put one where a word is missing, try an example above, or hide a token here.")
    position = position_picker("Token to hide", "fill_hide", "hide", sentence.labels, len(sentence.labels) // 2)
    logits = prediction_at(bundle, sentence.engine, sentence.model_ids, position)  # masks it first
    (guesses,) = top_predictions(bundle, logits[None], top)
    names = [display_text(token) for token, _ in guesses]
    chart(
        predictions_figure(
            names,
            [p for _, p in guesses],
            f"{analysis.unique_labels(sentence.labels)[position]} hidden as {mask}",
            series="guess",
        ),
        key="fill_hidden",
    )
    st.stop()
fills = fill_mask(bundle, sentence.engine, sentence.prepared, k=top)
guesses = [fill.predictions[0][0] for fill in fills]
st.markdown("Best guess: " + best_guess(current_text(), guesses, [MASK_TEXT, mask]))
if len(fills) <= CHARTS_UP_TO:
    # A few masks side by side, each with its guesses printed beside the bars.
    for number, (fill, column) in enumerate(zip(fills, st.columns(max(len(fills), 2)), strict=False), start=1):
        names = [display_text(token) for token, _ in fill.predictions]
        probs = [p for _, p in fill.predictions]
        with column:
            chart(
                predictions_figure(names, probs, f"{mask} #{number} (token {fill.position})", series="guess"),
                key=f"fill_mask_{number}",
                csv=lambda n=names, p=probs: export.rows_csv(["token", "probability"], list(zip(n, p, strict=True))),
            )
else:
    # Many masks: one row each, not a chart each.
    spans = token_texts(current_text(), sentence.tokenized, bundle.config.max_len, strip=False)
    table = fill_table([(fill.position, fill.predictions) for fill in fills], spans)
    st.dataframe(
        table,
        key="fill_table",
        hide_index=True,
        column_config={
            "mask": st.column_config.NumberColumn("#", width="small"),
            "position": st.column_config.NumberColumn("token", width="small"),
            "probability": st.column_config.ProgressColumn("probability", format="percent", min_value=0, max_value=1),
        },
    )
    st.download_button(
        "CSV",
        lambda: export.rows_csv(
            ["mask", "position", "rank", "token", "probability"],
            [
                (number, fill.position, rank, token, p)
                for number, fill in enumerate(fills, start=1)
                for rank, (token, p) in enumerate(fill.predictions, start=1)
            ],
        ),
        file_name="fill_mask.csv",
        mime="text/csv",
        key="fill_table_csv",
        on_click="ignore",
        type="tertiary",
        icon=":material/download:",
    )
