"""Cloze evaluation: how well a masked-token model fills one hidden token of held-out text, against two
baselines that read no further than a table.

Glossary of shapes:
  N: evaluated positions
  W: window length (tokens of context around each position)
  k: guesses per position

  unigram    always the training text's most frequent tokens;
  neighbour  the token seen most often between the same left and right neighbours in the training text,
             falling back to unigram. A model that beats it reads more than the adjacent tokens.

Each evaluated position is hidden alone ([MASK]) in a window of held-out text around it, at a random
offset in the window, so the model has context on both sides as when a user types a sentence.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from explorer.model.bundle import ModelBundle
from explorer.model.inference import InferenceEngine
from explorer.text.vocab import MASK

WINDOW = 64  # the training windows' length: the model has seen every position of such a window
TOP_K = 5


@dataclass(frozen=True)
class ClozeSet:
    """Held-out positions to fill.

    Attributes:
      windows: ``[N, W]`` int32 model ids, the true token still in place.
      positions: ``[N]`` where in each window the hidden token is.
      left, right: ``[N]`` the true neighbours of the hidden token (for the neighbour baseline).
    """

    windows: np.ndarray
    positions: np.ndarray
    left: np.ndarray
    right: np.ndarray

    @property
    def targets(self) -> np.ndarray:
        return self.windows[np.arange(len(self.positions)), self.positions]  # [N]


def cloze_set(stream: np.ndarray, count: int, window: int = WINDOW, seed: int = 0) -> ClozeSet:
    """``count`` positions of ``stream`` (``[M]`` model ids) drawn without replacement, each in a window."""
    stream = np.asarray(stream, np.int32)
    if len(stream) < window + 2:
        raise ValueError(f"The held-out text has {len(stream)} tokens; a cloze window needs {window + 2}.")
    rng = np.random.default_rng(seed)
    centres = rng.choice(np.arange(1, len(stream) - 1), size=min(count, len(stream) - 2), replace=False)  # [N]
    offsets = rng.integers(1, window - 1, size=len(centres))  # [N] never the first or last slot
    starts = np.clip(centres - offsets, 0, len(stream) - window)  # [N]
    positions = centres - starts  # [N]
    windows = stream[starts[:, None] + np.arange(window)[None, :]]  # [N, W]
    return ClozeSet(windows, positions.astype(np.int32), stream[centres - 1], stream[centres + 1])


class NeighbourBaseline:
    """Guesses a hidden token from its two neighbours alone, by counting the training text."""

    def __init__(self, train_stream: np.ndarray, k: int = TOP_K):
        stream = np.asarray(train_stream, np.int64)
        unigram = Counter(stream.tolist())
        self.unigram = [token for token, _ in unigram.most_common(k)]
        # One key per (left, right) pair: packing both ids in an int64 keeps the count in numpy.
        keys = stream[:-2] * (1 << 32) + stream[2:]  # [M-2]
        table: defaultdict[int, Counter] = defaultdict(Counter)
        for key, middle in zip(keys.tolist(), stream[1:-1].tolist(), strict=True):
            table[key][middle] += 1
        self._table = table
        self.k = k

    def guesses(self, left: int, right: int) -> list[int]:
        seen = self._table.get(int(left) * (1 << 32) + int(right))
        out = [token for token, _ in seen.most_common(self.k)] if seen else []
        out += [token for token in self.unigram if token not in out]
        return out[: self.k]

    def predict(self, cloze: ClozeSet) -> np.ndarray:
        """``[N, k]`` guesses, best first."""
        return np.array([self.guesses(a, b) for a, b in zip(cloze.left, cloze.right, strict=True)], np.int32)

    def predict_unigram(self, cloze: ClozeSet) -> np.ndarray:
        return np.tile(np.asarray(self.unigram, np.int32), (len(cloze.positions), 1))  # [N, k]


def model_guesses(
    bundle: ModelBundle, engine: InferenceEngine, cloze: ClozeSet, k: int = TOP_K, batch: int = 64
) -> np.ndarray:
    """The model's ``[N, k]`` guesses, best first, with only the evaluated token masked in each window."""
    windows = cloze.windows.copy()
    rows = np.arange(len(windows))
    windows[rows, cloze.positions] = MASK
    out = []
    for start in range(0, len(windows), batch):
        chunk = list(windows[start : start + batch])
        count = len(chunk)
        chunk += [chunk[0]] * (batch - count)  # a fixed batch shape: one compiled program
        results = engine.run_batch(bundle.params, chunk)
        for i in range(count):
            logits = results[i].logits[cloze.positions[start + i]]  # [V]
            out.append(np.argsort(-logits, kind="stable")[:k])
    return np.asarray(out, np.int32)


def accuracy(guesses: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """``(top-1, top-k)`` accuracy of ``[N, k]`` guesses against ``[N]`` targets."""
    hits = guesses == np.asarray(targets)[:, None]  # [N, k]
    return float(hits[:, 0].mean()), float(hits.any(axis=1).mean())
