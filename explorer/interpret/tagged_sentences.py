"""Brown Corpus sentences as a model reads them: its tokens, each with the universal tag of its word.

The interpretability views read many real sentences at once: head roles are measured over held-out
sentences, and the part-of-speech probe is fitted on some and scored on others. Both need the sentence as
the model tokenizes it (BPE over its own vocabulary) and, for the probe, a tag per token. A token takes
the tag of the word its first non-space character falls in: `` County`` is the noun "County", and in
"investigation" split as ``␣investig`` + ``ation`` both pieces are the noun.

Glossary of shapes (as in ``explorer.model.encoder``): T tokens. The views run many of these sentences at
once with ``explorer.model.inference.run_in_batches``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.text import brown
from explorer.text.tokenizer import Tokenized, Tokenizer
from explorer.text.vocab import Vocab

# Longer sentences are skipped rather than cut (a cut sentence has tokens whose word is missing); models
# here train on 64-token windows, and nine in ten Brown sentences are shorter than that.
MAX_TOKENS = 64
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")
PROGRESS_EVERY = 50  # sentences between two progress reports


@dataclass(frozen=True)
class TaggedSentence:
    """One corpus sentence, tokenized for one model.

    Attributes:
      text: the sentence as a person would type it (``brown.detokenize``).
      tokens: the model tokenizer's view of ``text``.
      model_ids: ``[T]`` the model's ids of the tokens.
      tags: ``[T]`` universal tag of the word each token starts in; None for a token of only whitespace.
    """

    text: str
    tokens: Tokenized
    model_ids: np.ndarray
    tags: tuple[str | None, ...]


def token_words(text: str, spans: Sequence[tuple[int, int]], byte_counts: Sequence[int]) -> list[int | None]:
    """The word each token belongs to: the one whose character span holds the token's first non-space
    character; None for a token of only whitespace.

    Tokens are byte pieces (a token may end inside a multi-byte character), so everything is compared in
    UTF-8 byte offsets: ``spans`` are character spans of the words in ``text``, ``byte_counts`` the bytes
    each token covers, in order, from the start of ``text``.
    """
    data = text.encode("utf-8")
    char_bytes = np.concatenate([[0], np.cumsum([len(c.encode("utf-8")) for c in text])])  # [chars + 1]
    starts = [int(char_bytes[a]) for a, _ in spans]
    ends = [int(char_bytes[b]) for _, b in spans]
    words: list[int | None] = []
    offset = 0
    for count in byte_counts:
        first = next((i for i in range(offset, offset + count) if data[i] not in _WHITESPACE), None)
        word = None
        if first is not None:
            index = bisect.bisect_right(starts, first) - 1
            if index >= 0 and first < ends[index]:
                word = index
        words.append(word)
        offset += count
    return words


def tag_sentence(sentence: brown.Sentence, vocab: Vocab, tokenizer: Tokenizer) -> TaggedSentence | None:
    """``sentence`` tokenized with ``tokenizer`` (``vocab.tokenizer()``); None when it has more than
    ``MAX_TOKENS`` tokens."""
    text, spans = brown.detokenize(sentence.words)
    # mask=False: a sentence that says "[MASK]" means the characters, and byte offsets must stay exact.
    tokens = tokenizer.encode(text, max_tokens=MAX_TOKENS, mask=False)
    if tokens.truncated or tokens.chars_cut or len(tokens) == 0:
        return None
    universal = sentence.universal_tags
    words = token_words(text, spans, tokens.byte_counts)
    model_ids, _ = vocab.to_model_ids(tokens.ids)
    tags = tuple(None if w is None else universal[w] for w in words)
    return TaggedSentence(text=text, tokens=tokens, model_ids=model_ids, tags=tags)


def sample_sentences(
    vocab: Vocab, count: int, held_out: bool, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> list[TaggedSentence]:
    """``count`` sentences of the corpus's training or held-out texts, drawn at random (seeded) among
    those of at most ``MAX_TOKENS`` tokens. ``progress(done, count)`` hears every ``PROGRESS_EVERY``.

    Raises:
      brown.CorpusMissing: the corpus is not on this machine (the message says how to fetch it).
    """
    pool = [s for s in brown.sentences() if s.held_out == held_out]
    order = np.random.default_rng([seed, int(held_out)]).permutation(len(pool))
    tokenizer = vocab.tokenizer()
    out: list[TaggedSentence] = []
    for index in order:
        tagged = tag_sentence(pool[index], vocab, tokenizer)
        if tagged is not None:
            out.append(tagged)
            if progress is not None and (len(out) % PROGRESS_EVERY == 0 or len(out) == count):
                progress(len(out), count)
            if len(out) == count:
                break
    return out
