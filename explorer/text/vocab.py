"""The model's vocabulary: a closed subset of a tiktoken encoding, so no text is ever unknown to it.

A small encoder with a 100k-row embedding table would spend nearly all its parameters on tokens it never
sees. Instead the model keeps a subset of ``cl100k_base``: all 256 single-byte tokens, the most frequent
tokens of its training text, and every token BPE passes through on the way to those (its *ancestors*).
Ranks are renumbered densely in their original order, so the merge order is kept, and the subset is
itself a ``tiktoken.Encoding``: encoding a text is tiktoken's own BPE over the subset. Any UTF-8 text
then encodes with no unknown token and decodes back exactly; a word the model does not know splits into
smaller known pieces (`` pizza`` becomes `` p`` + ``izza``), as in real LLM vocabularies.

Row ``i`` of the embedding belongs to ``tiktoken_ids[i - NUM_SPECIAL]``, a ``cl100k_base`` id, so every
model token is also a ``cl100k_base`` token. Models saved before vocabularies were closed keep a
vocabulary that is not (``closed`` False): for them, tokens outside it are read as ``[UNK]`` as before.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from explorer.text.tokenizer import DEFAULT_ENCODING, Tokenizer, load_encoding

PAD, MASK, UNK = 0, 1, 2
SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[UNK]")
NUM_SPECIAL = len(SPECIAL_TOKENS)
NUM_BYTES = 256
# The smallest closed vocabulary: the special tokens and the 256 byte tokens.
MIN_CLOSED_SIZE = NUM_SPECIAL + NUM_BYTES


@dataclass(frozen=True)
class Vocab:
    """Maps tiktoken ids to model ids and back.

    Attributes:
      encoding: the tiktoken encoding the ids belong to.
      tiktoken_ids: the tiktoken id of every non-special model id, in model-id order (ascending, so in
        the encoding's merge order).
      closed: True when the ids form a closed subset (``closed_vocab``): text is then encoded by BPE over
        the subset itself and nothing is unknown. False for vocabularies of older checkpoints.
    """

    encoding: str
    tiktoken_ids: tuple[int, ...]
    closed: bool = False
    _index: dict[int, int] = field(init=False, repr=False, compare=False, hash=False)
    # Built on first use and kept: finding it in a shared cache would hash the whole id tuple every time
    # (~27 us for 8192 ids), and labelling a vocabulary calls it once per token.
    _tokenizer: Tokenizer | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(set(self.tiktoken_ids)) != len(self.tiktoken_ids):
            raise ValueError("A vocabulary must not list a tiktoken id twice.")
        if any(i < 0 for i in self.tiktoken_ids):
            raise ValueError("tiktoken ids are never negative.")
        if self.closed and list(self.tiktoken_ids) != sorted(self.tiktoken_ids):
            raise ValueError("A closed vocabulary lists its tiktoken ids in ascending (merge) order.")
        index = {tid: NUM_SPECIAL + row for row, tid in enumerate(self.tiktoken_ids)}
        object.__setattr__(self, "_index", index)

    # What the views say about the tokens (explorer.model.describe), as ``PretrainedVocab`` says it for a
    # pretrained model (explorer.text.pretrained_vocab): tiktoken is byte-level BPE; our models add no
    # opening or closing token.
    kind = "byte-level BPE"
    mask_text = SPECIAL_TOKENS[MASK]
    special_texts: ClassVar[tuple[str, ...]] = ()
    mask_id = MASK
    unk_id = UNK

    @property
    def size(self) -> int:
        return NUM_SPECIAL + len(self.tiktoken_ids)

    def __len__(self) -> int:
        return self.size

    def tokenizer(self) -> Tokenizer:
        """The tokenizer that makes this model's tokens: BPE over the subset for a closed vocabulary, the
        full encoding (with unknown tokens) for an older one. Reported ids are the encoding's ids."""
        if self._tokenizer is None:
            tokenizer = _subset_tokenizer(self.encoding, self.tiktoken_ids) if self.closed else Tokenizer(self.encoding)
            object.__setattr__(self, "_tokenizer", tokenizer)
        return self._tokenizer

    def to_model_ids(self, tiktoken_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(model_ids [T] int32, unknown [T] bool)``.

        A negative id is a ``[MASK]`` typed in the text (``Tokenized.ids``); ids outside the vocabulary
        become ``[UNK]`` (only possible for a vocabulary that is not closed, or ids of another tokenizer).
        """
        model_ids = np.array(
            [MASK if int(t) < 0 else self._index.get(int(t), UNK) for t in tiktoken_ids], dtype=np.int32
        )
        unknown = model_ids == UNK
        return model_ids, unknown

    def to_tiktoken_id(self, model_id: int) -> int | None:
        """The tiktoken id behind a model id, or None for a special token."""
        if model_id < NUM_SPECIAL:
            return None
        return self.tiktoken_ids[model_id - NUM_SPECIAL]

    def token_text(self, model_id: int) -> str:
        """The text of one model token (``[MASK]`` etc. for the special ones)."""
        tiktoken_id = self.to_tiktoken_id(model_id)
        return SPECIAL_TOKENS[model_id] if tiktoken_id is None else self.tokenizer().piece(tiktoken_id)

    def to_dict(self) -> dict:
        return {"encoding": self.encoding, "tiktoken_ids": list(self.tiktoken_ids), "closed": self.closed}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        """Reads ``to_dict``'s form; ``closed`` is absent from older checkpoints (their vocabularies are not)."""
        if not isinstance(data, dict) or not {"encoding", "tiktoken_ids"} <= set(data) <= {
            "encoding",
            "tiktoken_ids",
            "closed",
        }:
            raise ValueError("A vocabulary must be a mapping with 'encoding', 'tiktoken_ids' and 'closed'.")
        ids = data["tiktoken_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError("A vocabulary's tiktoken_ids must be a list of integers.")
        if not isinstance(data["encoding"], str):
            raise ValueError("A vocabulary's encoding must be a name.")
        closed = data.get("closed", False)
        if not isinstance(closed, bool):
            raise ValueError("A vocabulary's 'closed' must be true or false.")
        vocab = cls(encoding=data["encoding"], tiktoken_ids=tuple(ids), closed=closed)
        if closed:
            missing = unreachable_tokens(vocab)
            if missing:
                raise ValueError(
                    f"The vocabulary says it is closed, but BPE cannot reach {len(missing)} of its tokens "
                    f"(e.g. id {missing[0]}); the file was edited or damaged."
                )
        return vocab


# ----------------------------------------------------------------------------------------------------
# Building a closed subset


def _ranks(encoding: str) -> dict[bytes, int]:
    return load_encoding(encoding)[0]._mergeable_ranks


@functools.cache
def _token_bytes(encoding: str) -> dict[int, bytes]:
    """Every token of ``encoding`` by id (the inverse of its merge ranks), built once."""
    return {rank: token for token, rank in _ranks(encoding).items()}


def bpe_path(token: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Every token byte-pair encoding creates on the way from ``token``'s single bytes to ``token``.

    The same procedure as tiktoken's: repeatedly merge the adjacent pair whose merged bytes have the
    lowest rank. Returns the merged parts in the order they were made (the last is ``token`` itself when
    BPE reaches it, as it always does for a token of the full encoding).
    """
    parts = [bytes([b]) for b in token]
    made = []
    while len(parts) > 1:
        best, best_rank = -1, None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
        made.append(parts[best])
    return made


def byte_token_ids(encoding: str = DEFAULT_ENCODING) -> tuple[int, ...]:
    """The ids of the 256 single-byte tokens (every byte-level BPE encoding has them)."""
    ranks = _ranks(encoding)
    return tuple(sorted(ranks[bytes([b])] for b in range(NUM_BYTES)))


def closed_vocab(encoding: str, token_ids: Iterable[int], size: int) -> Vocab:
    """A closed vocabulary of exactly ``size`` entries for a text tokenized as ``token_ids``.

    Keeps the special tokens, the 256 byte tokens, then the text's tokens from most to least frequent
    (ties broken by id, so the result is deterministic), each together with its BPE ancestors; a token
    whose ancestors no longer fit is skipped for smaller ones. Rows left over (a text with few distinct
    tokens) take the encoding's lowest ids, whose ancestors are bytes: a model's embedding size must not
    depend on how many distinct tokens a text happens to have.
    """
    if size < MIN_CLOSED_SIZE:
        raise ValueError(
            f"vocab_size {size} is too small: a closed vocabulary holds {NUM_SPECIAL} special tokens and "
            f"{NUM_BYTES} byte tokens, so use at least {MIN_CLOSED_SIZE}."
        )
    base, _ = load_encoding(encoding)
    ranks = base._mergeable_ranks
    if size - NUM_SPECIAL > len(ranks):
        raise ValueError(f"vocab_size {size} is larger than {encoding} itself ({len(ranks) + NUM_SPECIAL}).")
    counts = Counter(int(t) for t in token_ids)
    ranked = sorted(counts, key=lambda tid: (-counts[tid], tid))
    room = size - NUM_SPECIAL
    chosen = set(byte_token_ids(encoding))

    def add_with_ancestors(tid: int) -> None:
        path = {ranks[part] for part in bpe_path(base.decode_single_token_bytes(tid), ranks)} | {tid}
        new = path - chosen
        if len(chosen) + len(new) <= room:
            chosen.update(new)

    for tid in ranked:
        if len(chosen) == room:
            break
        add_with_ancestors(tid)
    filler = 0
    while len(chosen) < room:  # a text with few distinct tokens: the lowest ids fill the table
        if filler not in chosen:
            add_with_ancestors(filler)
        filler += 1
    return Vocab(encoding=encoding, tiktoken_ids=tuple(sorted(chosen)), closed=True)


def unreachable_tokens(vocab: Vocab) -> list[int]:
    """The kept tokens that BPE over the subset cannot produce from their own bytes ([] when closed)."""
    by_id = _token_bytes(vocab.encoding)
    subset = {by_id[tid]: tid for tid in vocab.tiktoken_ids if tid in by_id}
    missing = []
    for tid in vocab.tiktoken_ids:
        token = by_id.get(tid)
        if token is None:  # not a token of the encoding at all
            missing.append(tid)
        elif len(token) > 1 and bpe_path(token, subset)[-1:] != [token]:
            missing.append(tid)
    return sorted(missing)


@functools.lru_cache(maxsize=16)
def _subset_tokenizer(encoding: str, tiktoken_ids: tuple[int, ...]) -> Tokenizer:
    import tiktoken

    base, _ = load_encoding(encoding)
    by_id = _token_bytes(encoding)
    subset = tiktoken.Encoding(
        name=f"{encoding}[{len(tiktoken_ids)}]",
        pat_str=base._pat_str,
        mergeable_ranks={by_id[tid]: rank for rank, tid in enumerate(tiktoken_ids)},
        special_tokens={},
    )
    return Tokenizer.from_encoding(subset, name=encoding, to_base_ids=np.asarray(tiktoken_ids, np.int64))
