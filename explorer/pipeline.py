"""Text in, every intermediate out: the path one sentence takes through tokenizer, vocabulary and encoder.

Shared by the CLI and the app so both tokenize, map unknown tokens and run the engine the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer import analysis
from explorer.bundle import ModelBundle
from explorer.inference import InferenceEngine, Inspection
from explorer.tokenizer import Tokenized, Tokenizer
from explorer.vocab import MASK, SPECIAL_TOKENS
from explorer.wordpiece import WordPieceTokenizer


@dataclass(frozen=True)
class SentenceRun:
    """One sentence through one model.

    Attributes:
      tokens: the tiktoken view (ids, readable pieces, truncation).
      model_ids: ``[T]`` rows of the model's embedding; ``[UNK]`` where the model never saw the token.
      unknown: ``[T]`` True where a token became ``[UNK]``.
      result: every intermediate of the forward pass, sliced to ``T``.
    """

    tokens: Tokenized
    model_ids: np.ndarray
    unknown: np.ndarray
    result: Inspection

    @property
    def labels(self) -> list[str]:
        return self.tokens.labels

    def unknown_message(self) -> str | None:
        count = int(self.unknown.sum())
        if not count:
            return None
        shown = ", ".join(repr(self.tokens.pieces[i]) for i in np.flatnonzero(self.unknown)[:5])
        more = "…" if count > 5 else ""
        return (
            f"{count} of {len(self.unknown)} tokens are not in the model's vocabulary and are read as "
            f"{SPECIAL_TOKENS[2]}: {shown}{more}."
        )


def tokenize_for(bundle: ModelBundle, tokenizer: Tokenizer | WordPieceTokenizer, text: str) -> Tokenized:
    """Tokenizes ``text`` for ``bundle``, cut to the model's maximum length."""
    if tokenizer.name != bundle.vocab.encoding:
        raise ValueError(
            f"This model was trained on {bundle.vocab.encoding} tokens; with {tokenizer.name} every token "
            f"would be unknown to it. Choose {bundle.vocab.encoding}."
        )
    return tokenizer.encode(text, max_tokens=bundle.config.max_len)


def run_text(
    bundle: ModelBundle,
    engine: InferenceEngine,
    tokenizer: Tokenizer | WordPieceTokenizer,
    text: str,
    head_mask: np.ndarray | None = None,
    causal: bool = False,
) -> SentenceRun:
    """Tokenizes and runs ``text``; raises ``ValueError`` with a readable reason for empty input."""
    if engine.config != bundle.config:
        raise ValueError("The engine was compiled for another model configuration.")
    tokens = tokenize_for(bundle, tokenizer, text)
    if len(tokens) == 0:
        raise ValueError("The text is empty: type a sentence to see it go through the encoder.")
    model_ids, unknown = bundle.vocab.to_model_ids(tokens.ids)
    result = engine.run(bundle.params, model_ids, head_mask=head_mask, causal=causal)
    return SentenceRun(tokens=tokens, model_ids=model_ids, unknown=unknown, result=result)


# The views check config.output_head and say this; the functions below refuse such a model.
NO_OUTPUT_HEAD = "This model has no prediction head: it turns text into hidden states (and sentence embeddings) only."


def _require_output_head(bundle: ModelBundle) -> None:
    if not bundle.config.output_head:
        raise ValueError(NO_OUTPUT_HEAD)


def top_predictions(
    bundle: ModelBundle, tokenizer: Tokenizer, logits: np.ndarray, k: int = 5
) -> list[list[tuple[str, float]]]:
    """Per position, the ``k`` most probable tokens as ``(text, probability)``; ``logits`` is ``[T, V]``."""
    _require_output_head(bundle)
    out = []
    for row in np.asarray(logits):
        ids, probs = analysis.top_predictions(row, k)
        entries = []
        for model_id, prob in zip(ids, probs, strict=True):
            tiktoken_id = bundle.vocab.to_tiktoken_id(int(model_id))
            text = SPECIAL_TOKENS[int(model_id)] if tiktoken_id is None else tokenizer.piece(tiktoken_id)
            entries.append((text, float(prob)))
        out.append(entries)
    return out


# What the logits at position i mean, per training task.
PREDICTION_MEANING = {
    "mlm": "the token at this position when it is replaced by [MASK]",
    "causal": "the next token, from this position and those before it",
}
DEFAULT_MEANING = "the task's output at this position"
MASKED_BATCH = 8  # fixed batch size for the masked copies: one compiled shape per bucket, not one per text


def position_predictions(
    bundle: ModelBundle, engine: InferenceEngine, tokenizer: Tokenizer, model_ids: np.ndarray, k: int = 3
) -> tuple[str, list[list[tuple[str, float]]]]:
    """What the model predicts at every position, in the sense of its training task.

    An MLM model is only trained to predict tokens it cannot see, so its outputs at visible positions say
    little; for it, each position is masked in turn (in batches of ``MASKED_BATCH`` copies) and the
    prediction for the hidden token is reported. Returns ``(meaning, predictions)``.
    """
    _require_output_head(bundle)
    model_ids = np.asarray(model_ids, np.int32)
    if bundle.task != "mlm":
        causal = bundle.task == "causal"
        logits = engine.run(bundle.params, model_ids, causal=causal).logits
        return PREDICTION_MEANING.get(bundle.task, DEFAULT_MEANING), top_predictions(bundle, tokenizer, logits, k)
    rows = []
    for start in range(0, len(model_ids), MASKED_BATCH):
        positions = list(range(start, min(start + MASKED_BATCH, len(model_ids))))
        copies = []
        for position in positions:
            masked = model_ids.copy()
            masked[position] = MASK
            copies.append(masked)
        copies += [model_ids] * (MASKED_BATCH - len(copies))  # pad the batch to its fixed size
        results = engine.run_batch(bundle.params, copies)
        rows += [results[i].logits[position] for i, position in enumerate(positions)]
    return PREDICTION_MEANING["mlm"], top_predictions(bundle, tokenizer, np.stack(rows), k)
