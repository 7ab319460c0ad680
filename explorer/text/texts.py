"""Training texts: the named texts a model can learn from, their closed vocabularies and token streams.

Text tasks (mlm, causal) train on one of:
  english  the Brown Corpus, real edited English (``explorer.text.brown``; fetched by ``make corpus``);
  grammar  the bundled agreement grammar (``explorer.text.corpus``), whose sentences carry long-range links;
  a user's uploaded text.
The toy tasks make their own sequences and only borrow the grammar's small vocabulary.

Each text is held out in part for evaluation, and its vocabulary is the closed tiktoken subset of
``explorer.text.vocab`` built from its training part: the same text and size always give the same
vocabulary, so a model trained in the app matches the checkpoint trained by the CLI.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from explorer.text import brown
from explorer.text.corpus import corpus_text
from explorer.text.tokenizer import DEFAULT_ENCODING, Tokenizer
from explorer.text.vocab import NUM_SPECIAL, Vocab, closed_vocab

TEXT_NAMES = ("english", "grammar")
DEFAULT_TEXT = "english"
UPLOADED = "uploaded"
TOY_TASK_TEXT = "grammar"  # the toy tasks make their own sequences; they borrow this text's small vocabulary
TEXT_LABELS = {
    "english": "English (Brown Corpus)",
    "grammar": "agreement grammar (bundled)",
    UPLOADED: "uploaded text",
}
# Uploaded text is cut here: a 2 MB text is ~500k tokens, more than a small model sees in a live session.
MAX_UPLOAD_CHARS = 2_000_000
HELD_OUT_FRACTION = 0.1  # of an uploaded text or the grammar, from its end
# Vocabulary sizes: English needs thousands of tokens to keep everyday words whole (8192 keeps them as
# cl100k_base does and the output head affordable: see the README's *Default model*); the grammar's few
# hundred distinct tokens, their BPE ancestors and the 256 bytes fit in 1024, and a small table keeps
# toy models small and fast.
ENGLISH_VOCAB_SIZE = 8192  # the default model's (``ModelConfig.vocab_size``), the English one
GRAMMAR_VOCAB_SIZE = 1024
VOCAB_SIZES = {"english": ENGLISH_VOCAB_SIZE, "grammar": GRAMMAR_VOCAB_SIZE, UPLOADED: ENGLISH_VOCAB_SIZE}


@dataclass(frozen=True)
class TrainingText:
    """A text to train on: its name, a label for people, and its training and held-out parts."""

    name: str
    label: str
    train: str
    held_out: str


def _split(text: str, fraction: float = HELD_OUT_FRACTION) -> tuple[str, str]:
    """The last ``fraction`` of a text held out, cut at a line break or space so no word is split."""
    cut = int(len(text) * (1 - fraction))
    boundary = max(text.rfind("\n", 0, cut), text.rfind(" ", 0, cut))
    cut = boundary if boundary > 0 else cut
    return text[:cut], text[cut:]


@functools.lru_cache(maxsize=4)
def named_text(name: str) -> TrainingText:
    """One of ``TEXT_NAMES``.

    Raises:
      ValueError: an unknown name.
      brown.CorpusMissing: ``english`` when the corpus has not been fetched (the message says how).
    """
    if name == "english":
        train, held_out = brown.train_and_held_out_text()
    elif name == "grammar":
        train, held_out = _split(corpus_text())
    else:
        raise ValueError(f"Unknown training text {name!r}; choose one of {TEXT_NAMES} or upload a text.")
    return TrainingText(name, TEXT_LABELS[name], train, held_out)


def uploaded_text(text: str) -> TrainingText:
    """A user's text, cut to ``MAX_UPLOAD_CHARS``; its last tenth is held out."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The uploaded text is empty.")
    train, held_out = _split(text[:MAX_UPLOAD_CHARS])
    return TrainingText(UPLOADED, TEXT_LABELS[UPLOADED], train, held_out)


def default_vocab_size(name: str) -> int:
    """The vocabulary size a new model gets for a named text (``uploaded`` included)."""
    return VOCAB_SIZES[name]


def text_available(name: str) -> str | None:
    """None when ``name`` can be trained on here, else one sentence saying what is missing and how to get it."""
    if name == "english" and not brown.available():
        return brown.MISSING_MESSAGE
    return None


@functools.lru_cache(maxsize=8)
def text_vocab(text: TrainingText, vocab_size: int, encoding: str = DEFAULT_ENCODING) -> Vocab:
    """The closed vocabulary of ``vocab_size`` entries built from the text's training part."""
    tokenizer = Tokenizer(encoding)
    ids = tokenizer.encoding.encode(text.train, allowed_special=set(), disallowed_special=())
    return closed_vocab(tokenizer.name, ids, vocab_size)


def vocab_for(name: str, vocab_size: int) -> Vocab:
    """The closed vocabulary of a named text (``grammar`` also serves the toy tasks and random models)."""
    return text_vocab(named_text(name), vocab_size)


@functools.lru_cache(maxsize=8)
def token_streams(text: TrainingText, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """The training and held-out parts as model ids ``([N] int32, [M] int32)``, tokenized as the model
    tokenizes (BPE over its closed vocabulary)."""
    if not vocab.closed:
        raise ValueError("Training needs a closed vocabulary (explorer.text.vocab.closed_vocab).")
    encoding = vocab.tokenizer().encoding  # the subset: its ids are model rows minus the special tokens
    return tuple(
        np.asarray(encoding.encode(part, allowed_special=set(), disallowed_special=()), np.int32) + NUM_SPECIAL
        for part in (text.train, text.held_out)
    )


def unigram_loss(train: np.ndarray, held_out: np.ndarray, vocab_size: int) -> float:
    """Held-out cross-entropy (nats) of always predicting the training stream's token frequencies
    (add-one smoothed, so an unseen token costs a finite amount): the loss a model reaches without context."""
    counts = np.bincount(np.asarray(train), minlength=vocab_size).astype(np.float64) + 1.0  # [V]
    log_probs = np.log(counts / counts.sum())  # [V]
    return float(-log_probs[np.asarray(held_out)].mean())
