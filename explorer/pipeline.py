"""Text in, every intermediate out: the one path a text takes through tokenizer, vocabulary and encoder.

The app's pages, the CLI and the benchmarks all go through ``prepare_text`` and ``run_text``, so a
notice (truncation, unknown tokens, control characters) or an error reads the same everywhere, and
fill-mask / per-position predictions and the similarity of two texts are computed one way.

May import: text, model, interpret.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from explorer.interpret import analysis, similarity
from explorer.model.bundle import MASKED_LM, ModelBundle
from explorer.model.inference import InferenceEngine, Inspection
from explorer.text.tokenizer import MASK_TEXT, Tokenized, bounded_text
from explorer.text.vocab import MASK, SPECIAL_TOKENS, UNK


class EmptyText(ValueError):
    """There is nothing to run: the text is empty or only whitespace."""


@dataclass(frozen=True)
class PreparedText:
    """One text, tokenized for one model (nothing run yet).

    Attributes:
      tokens: the model's tokens (ids of the base tiktoken encoding, -1 at ``[MASK]``), pieces, truncation.
      model_ids: ``[T]`` int32 rows of the model's embedding.
      unknown: ``[T]`` True where a token became ``[UNK]`` (never, for a closed vocabulary).
      notices: sentences the user should read (truncation, unknown tokens, control characters).
    """

    tokens: Tokenized
    model_ids: np.ndarray
    unknown: np.ndarray
    notices: tuple[str, ...]
    mask_id: int = MASK  # the vocabulary's mask row (a pretrained vocabulary has its own)
    special_texts: tuple[str, ...] = ()  # the tokens the tokenizer adds around the text ([CLS], [SEP])

    def __len__(self) -> int:
        return len(self.model_ids)

    @property
    def special(self) -> np.ndarray:
        """``[T]`` True at the tokens the tokenizer added (``[CLS]``, ``[SEP]``): they cover no text. A user
        typing "[CLS]" gets its characters as pieces, never these."""
        return np.array(
            [
                piece in self.special_texts and count == 0
                for piece, count in zip(self.tokens.pieces, self.tokens.byte_counts, strict=True)
            ],
            dtype=bool,
        )

    @property
    def text_tokens(self) -> Tokenized:
        """The tokens that cover the text: ``tokens`` without the ones the tokenizer added (``special``), to
        compare with another tokenizer's cut of the same text."""
        keep = np.flatnonzero(~self.special)
        return dataclasses.replace(
            self.tokens,
            ids=tuple(self.tokens.ids[i] for i in keep),
            pieces=tuple(self.tokens.pieces[i] for i in keep),
            byte_counts=tuple(self.tokens.byte_counts[i] for i in keep),
        )

    @property
    def labels(self) -> list[str]:
        """Token text with visible whitespace; tokens read as [UNK] say so."""
        unknown = SPECIAL_TOKENS[UNK]
        return [
            f"{label} {unknown}" if unk and label != unknown else label
            for label, unk in zip(self.tokens.labels, self.unknown, strict=True)
        ]

    @property
    def mask_positions(self) -> list[int]:
        """Positions of the ``[MASK]`` tokens typed in the text."""
        return [int(i) for i in np.flatnonzero(self.model_ids == self.mask_id)]


def token_texts(text: str, tokens: Tokenized, max_tokens: int, strip: bool = True) -> list[str]:
    """The characters of ``text`` each token covers (a ``[UNK]`` token's characters, an emoji a vocabulary
    lacks), the spaces around them stripped unless ``strip`` is False; "" for a token the tokenizer added.
    Byte counts tile the text (``Tokenized``), so a running sum of them is each token's byte offset; a token
    that ends inside a character shows the replacement mark."""
    data = bounded_text(text, max_tokens)[0].encode("utf-8")  # the text as the tokenizer read it
    out, offset = [], 0
    for count in tokens.byte_counts:
        covered = data[offset : offset + count].decode("utf-8", errors="replace")
        out.append(covered.strip() if strip else covered)
        offset += count
    return out


def _unknown_message(text: str, tokens: Tokenized, unknown: np.ndarray, vocab_size: int, max_tokens: int) -> str | None:
    count = int(unknown.sum())
    if not count:
        return None
    texts = token_texts(text, tokens, max_tokens)
    # Quote what the user typed, not the [UNK] it became (the piece itself, if it covers no characters).
    shown = ", ".join(dict.fromkeys(repr(texts[i] or tokens.pieces[i]) for i in np.flatnonzero(unknown)[:5]))
    more = "…" if count > 5 else ""
    return (
        f"{count} of {len(unknown)} tokens are not in this model's {vocab_size}-token vocabulary and are read "
        f"as {SPECIAL_TOKENS[UNK]}: {shown}{more}."
    )


def prepare_text(bundle: ModelBundle, text: str) -> PreparedText:
    """Tokenizes ``text`` as ``bundle``'s model reads it, cut to its maximum length.

    ``[MASK]`` in the text is the mask token. Raises ``EmptyText`` for empty or whitespace-only text.
    """
    if not isinstance(text, str):
        raise ValueError(f"Text must be a string, got {type(text).__name__}.")
    if not text.strip():
        what = "empty" if not text else "only whitespace"
        raise EmptyText(f"The text is {what}: type a sentence to see it go through the encoder.")
    tokens = bundle.vocab.tokenizer().encode(text, bundle.config.max_len)
    model_ids, unknown = bundle.vocab.to_model_ids(tokens.ids)
    notices = [
        tokens.truncation_message(),
        _unknown_message(text, tokens, unknown, bundle.vocab.size, bundle.config.max_len),
    ]
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t\r" for c in text[:100_000]):
        notices.append("The text contains control characters; tokens show them as <0x..> codes.")
    return PreparedText(
        tokens,
        model_ids,
        unknown,
        tuple(n for n in notices if n),
        bundle.vocab.mask_id,
        tuple(bundle.vocab.special_texts),
    )


@dataclass(frozen=True)
class SentenceRun:
    """One text through one model: its tokens and every intermediate of the forward pass (sliced to T)."""

    prepared: PreparedText
    result: Inspection

    @property
    def tokens(self) -> Tokenized:
        return self.prepared.tokens

    @property
    def model_ids(self) -> np.ndarray:
        return self.prepared.model_ids

    @property
    def unknown(self) -> np.ndarray:
        return self.prepared.unknown

    @property
    def labels(self) -> list[str]:
        return self.prepared.labels


def run_text(
    bundle: ModelBundle,
    engine: InferenceEngine,
    text: str | PreparedText,
    head_mask: np.ndarray | None = None,
    causal: bool = False,
) -> SentenceRun:
    """Tokenizes (unless given a ``PreparedText``) and runs ``text``; raises ``EmptyText`` for empty input."""
    if engine.config != bundle.config:
        raise ValueError("The engine was compiled for another model configuration.")
    prepared = text if isinstance(text, PreparedText) else prepare_text(bundle, text)
    result = engine.run(bundle.params, prepared.model_ids, head_mask=head_mask, causal=causal)
    return SentenceRun(prepared, result)


# The views check config.output_head and say this; the functions below refuse such a model.
NO_OUTPUT_HEAD = "This model has no prediction head: it turns text into hidden states (and sentence embeddings) only."


def _require_output_head(bundle: ModelBundle) -> None:
    if not bundle.config.output_head:
        raise ValueError(NO_OUTPUT_HEAD)


def top_predictions(bundle: ModelBundle, logits: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """Per row of ``logits`` (``[T, V]``), the ``k`` most probable tokens as ``(text, probability)``."""
    return [[(text, p) for _, text, p in row] for row in _top(bundle, logits, k)]


def _top(bundle: ModelBundle, logits: np.ndarray, k: int) -> list[list[tuple[int, str, float]]]:
    _require_output_head(bundle)
    out = []
    for row in np.asarray(logits):
        ids, probs = analysis.top_predictions(row, k)
        out.append([(int(i), bundle.vocab.token_text(int(i)), float(p)) for i, p in zip(ids, probs, strict=True)])
    return out


@dataclass(frozen=True)
class MaskFill:
    """The model's guesses for one ``[MASK]`` of the text."""

    position: int
    predictions: list[tuple[str, float]]  # (token text, probability), most probable first
    ids: tuple[int, ...] = ()  # the guesses' model ids, in the same order


NO_MASK_MESSAGE = (
    f"The text has no {MASK_TEXT}: write {MASK_TEXT} where a word is missing, e.g. 'The cat sat on the {MASK_TEXT}.'"
)


def fill_mask(bundle: ModelBundle, engine: InferenceEngine, text: str | PreparedText, k: int = 5) -> list[MaskFill]:
    """Top-``k`` predictions at every ``[MASK]`` in the text, all masks hidden at once (as in BERT's
    fill-mask). Raises ``ValueError`` when the text has no mask or the model was not trained to fill one."""
    _require_output_head(bundle)
    if not bundle.fills_masks:
        what = "an untrained model" if bundle.task is None else f"a model trained on the {bundle.task} task"
        raise ValueError(
            f"Filling a {MASK_TEXT} needs a masked-token model (mlm, or a pretrained masked-LM); this is {what}."
        )
    prepared = text if isinstance(text, PreparedText) else prepare_text(bundle, text)
    positions = prepared.mask_positions
    if not positions:
        raise ValueError(NO_MASK_MESSAGE)
    logits = run_text(bundle, engine, prepared).result.logits[positions]  # [M, V]
    return [
        MaskFill(p, [(text, prob) for _, text, prob in row], tuple(i for i, _, _ in row))
        for p, row in zip(positions, _top(bundle, logits, k), strict=True)
    ]


# What the logits at position i mean, per training task.
PREDICTION_MEANING = {
    "mlm": "the token at this position when it is replaced by [MASK]",
    MASKED_LM: "the token at this position when it is replaced by the mask token",
    "causal": "the next token, from this position and those before it",
}
DEFAULT_MEANING = "the task's output at this position"
MASKED_BATCH = 8  # fixed batch size for the masked copies: one compiled shape per bucket, not one per text


def position_predictions(
    bundle: ModelBundle, engine: InferenceEngine, model_ids: np.ndarray, k: int = 3
) -> tuple[str, list[list[tuple[str, float]]]]:
    """What the model predicts at every position, in the sense of its training task.

    An MLM model is only trained to predict tokens it cannot see, so its outputs at visible positions say
    little; for it, each position is masked in turn (in batches of ``MASKED_BATCH`` copies) and the
    prediction for the hidden token is reported. Returns ``(meaning, predictions)``.
    """
    _require_output_head(bundle)
    model_ids = np.asarray(model_ids, np.int32)
    if not bundle.fills_masks:
        causal = bundle.task == "causal"
        logits = engine.run(bundle.params, model_ids, causal=causal).logits
        return PREDICTION_MEANING.get(bundle.task, DEFAULT_MEANING), top_predictions(bundle, logits, k)
    rows = []
    for start in range(0, len(model_ids), MASKED_BATCH):
        positions = list(range(start, min(start + MASKED_BATCH, len(model_ids))))
        copies = []
        for position in positions:
            masked = model_ids.copy()
            masked[position] = bundle.vocab.mask_id
            copies.append(masked)
        copies += [model_ids] * (MASKED_BATCH - len(copies))  # pad the batch to its fixed size
        results = engine.run_batch(bundle.params, copies)
        rows += [results[i].logits[position] for i, position in enumerate(positions)]
    return PREDICTION_MEANING[bundle.task], top_predictions(bundle, np.stack(rows), k)


def prediction_at(
    bundle: ModelBundle,
    engine: InferenceEngine,
    model_ids: np.ndarray,
    position: int,
    head_mask: np.ndarray | None = None,
    causal: bool = False,
) -> np.ndarray:
    """The model's logits ``[V]`` at one position, in the sense of its task (see ``PREDICTION_MEANING``):
    an MLM model gets that position masked first, as in ``position_predictions``."""
    _require_output_head(bundle)
    model_ids = np.asarray(model_ids, np.int32)
    if bundle.fills_masks:
        model_ids = model_ids.copy()
        model_ids[position] = bundle.vocab.mask_id
    return engine.run(bundle.params, model_ids, head_mask=head_mask, causal=causal).logits[position]


# ---------------------------------------------------------------------------------------------------
# Sentence similarity (what MiniLM was trained for): the texts through the model, then pooled and compared


def embed_texts(bundle: ModelBundle, engine: InferenceEngine, texts: Sequence[str]) -> np.ndarray:
    """Sentence embeddings of some texts, ``[N, D]``, each text through ``run_text``.

    Texts are cut at the model's maximum length (512 tokens for MiniLM); sentence-transformers cuts this
    model's input at 256, so a longer text gets a different embedding there.
    """
    rows = [similarity.sentence_embedding(run_text(bundle, engine, text).result.final_hidden) for text in texts]
    return np.stack(rows) if rows else np.zeros((0, bundle.config.d_model), np.float32)  # [N, D]


def text_similarity(bundle: ModelBundle, engine: InferenceEngine, text_a: str, text_b: str) -> float:
    """Cosine similarity of two texts' sentence embeddings."""
    a, b = embed_texts(bundle, engine, [text_a, text_b])  # [D], [D]
    return similarity.cosine_similarity(a, b)
