"""The model's compact vocabulary: the tiktoken ids that occur in its training text, plus specials.

A toy encoder with a 100k-row embedding table would spend nearly all its parameters on tokens it never
sees. Instead row ``i`` of the embedding belongs to ``tiktoken_ids[i - NUM_SPECIAL]``; any other tiktoken
id maps to ``[UNK]``, and callers are told which positions that happened to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

PAD, MASK, UNK = 0, 1, 2
SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[UNK]")
NUM_SPECIAL = len(SPECIAL_TOKENS)


@dataclass(frozen=True)
class Vocab:
    """Maps tiktoken ids to model ids and back.

    Attributes:
      encoding: the tiktoken encoding name the ids belong to.
      tiktoken_ids: the tiktoken id of every non-special model id, in model-id order.
    """

    encoding: str
    tiktoken_ids: tuple[int, ...]
    _index: dict[int, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(set(self.tiktoken_ids)) != len(self.tiktoken_ids):
            raise ValueError("A vocabulary must not list a tiktoken id twice.")
        if any(i < 0 for i in self.tiktoken_ids):
            raise ValueError("tiktoken ids are never negative.")
        index = {tid: NUM_SPECIAL + row for row, tid in enumerate(self.tiktoken_ids)}
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_token_streams(cls, encoding: str, streams: Iterable[Sequence[int]], max_size: int | None = None) -> Vocab:
        """Keeps the most frequent tiktoken ids (ties broken by id, so the result is deterministic)."""
        counts: Counter[int] = Counter()
        for ids in streams:
            counts.update(ids)
        ranked = sorted(counts, key=lambda tid: (-counts[tid], tid))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - NUM_SPECIAL)]
        return cls(encoding=encoding, tiktoken_ids=tuple(sorted(ranked)))

    @property
    def size(self) -> int:
        return NUM_SPECIAL + len(self.tiktoken_ids)

    def __len__(self) -> int:
        return self.size

    def to_model_ids(self, tiktoken_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(model_ids [T] int32, unknown [T] bool)``; unknown ids became ``[UNK]``."""
        model_ids = np.array([self._index.get(int(t), UNK) for t in tiktoken_ids], dtype=np.int32)
        unknown = model_ids == UNK
        return model_ids, unknown

    def to_tiktoken_id(self, model_id: int) -> int | None:
        """The tiktoken id behind a model id, or None for a special token."""
        if model_id < NUM_SPECIAL:
            return None
        return self.tiktoken_ids[model_id - NUM_SPECIAL]

    def is_special(self, model_id: int) -> bool:
        return model_id < NUM_SPECIAL

    def to_dict(self) -> dict:
        return {"encoding": self.encoding, "tiktoken_ids": list(self.tiktoken_ids)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        if not isinstance(data, dict) or set(data) != {"encoding", "tiktoken_ids"}:
            raise ValueError("A vocabulary must be a mapping with exactly 'encoding' and 'tiktoken_ids'.")
        ids = data["tiktoken_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError("A vocabulary's tiktoken_ids must be a list of integers.")
        if not isinstance(data["encoding"], str):
            raise ValueError("A vocabulary's encoding must be a name.")
        return cls(encoding=data["encoding"], tiktoken_ids=tuple(ids))
