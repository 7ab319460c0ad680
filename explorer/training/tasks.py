"""Training tasks: batch makers that run on device, and the ideal attention of the toy tasks.

Glossary of shapes:
  B: batch size
  T: sequence length
  N: tokens in a text stream
  S: toy symbols in use
  L: layers, H: heads

Every task yields the same ``Batch``: inputs, a padding mask, the positions whose output is scored, their
targets and loss weights, so one loss and one training step serve them all. Masked-token prediction
scores a fixed number of positions per row (as BERT's ``max_predictions_per_seq``), so the output head,
a third of the step's arithmetic at our sizes, runs only where there is something to predict. Batches are sampled by pure ``jax.random`` functions from
a ``source`` array that stays on the device (the token stream of a text, or the model ids of the toy
symbols); the training loop can therefore draw many batches inside one compiled ``lax.scan`` without
Python or host-to-device copies in between.

Tasks:
  mlm     masked-token prediction on text (BERT's recipe: 15% of positions chosen; of those 80% become
          [MASK], 10% a random token, 10% stay) -- the encoder's natural objective.
  causal  next-token prediction on text with a causal attention mask: the decoder's objective.
  reverse output position i holds input position T-1-i; ideal attention is the anti-diagonal.
  sort    output position i holds the i-th smallest input symbol; ideal attention points at that symbol.
  copy    output position i holds input position (i - offset) mod T; ideal attention is a shifted diagonal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from explorer.text.corpus import TOY_SYMBOLS, toy_symbol_ids
from explorer.text.vocab import MASK, Vocab

TEXT_TASKS = ("mlm", "causal")
TOY_TASKS = ("reverse", "sort", "copy")
TASKS = TEXT_TASKS + TOY_TASKS  # what a model can be trained on here (and what its logits then mean)

TASK_DESCRIPTIONS = {
    "mlm": "Masked-token prediction on text (the encoder's objective)",
    "causal": "Next-token prediction with a causal mask (the decoder's objective)",
    "reverse": "Reverse a sequence of symbols (ideal attention: the anti-diagonal)",
    "sort": "Sort a sequence of symbols (ideal attention: where each output symbol sits)",
    "copy": "Copy a sequence shifted by an offset (ideal attention: a shifted diagonal)",
}


class Batch(NamedTuple):
    """One batch of any task (a leading ``[K]`` axis when several are stacked for ``lax.scan``).

    P is the number of scored positions per row: ``round(mask_rate * T)`` for mlm, else ``T``.
    """

    inputs: jax.Array  # [B, T] int32 model ids fed to the encoder
    input_mask: jax.Array  # [B, T] bool, True at real tokens
    positions: jax.Array  # [B, P] int32 positions whose prediction is scored
    targets: jax.Array  # [B, P] int32 model ids to predict there
    weights: jax.Array  # [B, P] float32, 1.0 where the loss counts


@dataclass(frozen=True)
class TaskSpec:
    """Everything that decides the *shape* of a task's batches: hashable, a static argument to jit."""

    task: str
    batch_size: int = 32
    seq_len: int = 64
    mask_rate: float = 0.15  # BERT's rate: enough signal per batch, enough context left to predict from
    num_symbols: int = 16  # toy alphabet size; more symbols make sort harder and reverse no harder
    copy_offset: int = 3

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Unknown task {self.task!r}; choose one of {TASKS}.")
        if self.batch_size < 1 or self.seq_len < 2:
            raise ValueError(f"batch_size must be >= 1 and seq_len >= 2 (got {self.batch_size}, {self.seq_len}).")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {self.mask_rate}.")
        if not 2 <= self.num_symbols <= len(TOY_SYMBOLS):
            raise ValueError(f"num_symbols must be between 2 and {len(TOY_SYMBOLS)}, got {self.num_symbols}.")
        if self.task == "copy" and not 0 < self.copy_offset < self.seq_len:
            raise ValueError(f"copy_offset must be between 1 and seq_len - 1, got {self.copy_offset}.")

    @property
    def causal(self) -> bool:
        """Whether the encoder runs with a causal mask for this task."""
        return self.task == "causal"

    @property
    def is_text(self) -> bool:
        return self.task in TEXT_TASKS

    @property
    def num_predictions(self) -> int:
        """P: scored positions per row."""
        if self.task == "mlm":
            return max(1, round(self.mask_rate * self.seq_len))
        return self.seq_len


def toy_source(vocab: Vocab, num_symbols: int) -> np.ndarray:
    """The model ids of the first ``num_symbols`` toy symbols, in sort order: ``[S]`` int32."""
    ids, unknown = vocab.to_model_ids(toy_symbol_ids(vocab.encoding)[:num_symbols])
    if unknown.any():
        missing = [TOY_SYMBOLS[i] for i in np.flatnonzero(unknown)]
        raise ValueError(f"The vocabulary lacks toy symbols {missing}; build it with explorer.text.vocab.closed_vocab.")
    if np.any(np.diff(ids) <= 0):  # the sort task relies on model ids increasing in symbol order
        raise ValueError(f"The toy symbols' ids in {vocab.encoding} are not in symbol order; use cl100k_base.")
    return ids


def check_stream(stream: np.ndarray, seq_len: int, part: str) -> None:
    """Raises a readable ``ValueError`` when a text part is too short for windows of ``seq_len``."""
    needed = seq_len + 1  # causal windows need one token more than their length
    if len(stream) < needed:
        raise ValueError(
            f"The text's {part} has {len(stream)} tokens; training on windows of {seq_len} needs at least "
            f"{needed} (a tenth of the text is held out). Upload a longer text or choose a shorter sequence length."
        )


def _windows(stream: jax.Array, rng: jax.Array, batch: int, length: int) -> jax.Array:
    """``batch`` random windows of ``length`` consecutive tokens: ``[B, length]``."""
    starts = jax.random.randint(rng, (batch, 1), 0, stream.shape[0] - length + 1)  # [B, 1]
    return stream[starts + jnp.arange(length)[None, :]]  # [B, length]


def sample_batch(spec: TaskSpec, source: jax.Array, rng: jax.Array) -> Batch:
    """Draws one batch of ``spec.task``: its rows ``0 .. B-1`` (``sample_rows``). Pure and jittable (``spec``
    static).

    Args:
      spec: the task and its sizes.
      source: ``[N]`` model ids of a text (text tasks) or ``[S]`` model ids of toy symbols (toy tasks).
      rng: a PRNG key.
    Returns:
      A ``Batch`` of ``[B, T]`` arrays.
    """
    return sample_rows(spec, source, rng, jnp.arange(spec.batch_size))


def sample_rows(spec: TaskSpec, source: jax.Array, rng: jax.Array, rows: jax.Array) -> Batch:
    """Rows ``rows`` of the batch that ``rng`` draws: ``[R]`` row indices -> a ``Batch`` of ``[R, T]`` arrays.

    Row ``r`` comes from ``fold_in(rng, r)`` alone, so a batch split over devices (or over processes on
    several hosts) is the same batch however it is split, and each device draws only its own rows.
    """
    one_row = dataclasses.replace(spec, batch_size=1)

    def row(index: jax.Array) -> Batch:
        batch = _draw(one_row, source, jax.random.fold_in(rng, index))  # [1, T]
        return jax.tree.map(lambda x: x[0], batch)  # [T]

    return jax.vmap(row)(jnp.asarray(rows))  # [R, T]


def _draw(spec: TaskSpec, source: jax.Array, rng: jax.Array) -> Batch:
    """``spec.batch_size`` rows from one key (``sample_rows`` calls it one row at a time)."""
    source = jnp.asarray(source)
    B, T, P = spec.batch_size, spec.seq_len, spec.num_predictions
    full = jnp.ones((B, T), bool)  # [B, T] our batches have no padding: every window is full
    every = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))  # [B, T]
    ones = jnp.ones((B, T), jnp.float32)  # [B, T]
    if spec.task == "mlm":
        k_win, k_pick, k_kind, k_rand = jax.random.split(rng, 4)
        window = _windows(source, k_win, B, T)  # [B, T]
        # P distinct positions per row, uniformly at random: where the P largest of T uniform draws are.
        # (top_k, not a full argsort: 4x faster on a CPU, measured at B 32, T 64.)
        positions = jax.lax.top_k(jax.random.uniform(k_pick, (B, T)), P)[1].astype(jnp.int32)  # [B, P]
        targets = jnp.take_along_axis(window, positions, axis=1)  # [B, P]
        kind = jax.random.uniform(k_kind, (B, P))  # [B, P] <0.8 mask, <0.9 random token, else keep
        # Random replacements are drawn from the text itself, so they follow its token frequencies.
        random_tokens = source[jax.random.randint(k_rand, (B, P), 0, source.shape[0])]  # [B, P]
        corrupted = jnp.where(kind < 0.8, MASK, jnp.where(kind < 0.9, random_tokens, targets))  # [B, P]
        rows = jnp.arange(B)[:, None]  # [B, 1]
        inputs = window.at[rows, positions].set(corrupted)  # [B, T]
        return Batch(inputs, full, positions, targets, jnp.ones((B, P), jnp.float32))
    if spec.task == "causal":
        window = _windows(source, rng, B, T + 1)  # [B, T+1]
        return Batch(window[:, :-1], full, every, window[:, 1:], ones)
    symbols = jax.random.randint(rng, (B, T), 0, source.shape[0])  # [B, T] indices in sort order
    if spec.task == "reverse":
        target_symbols = symbols[:, ::-1]  # [B, T]
    elif spec.task == "sort":
        target_symbols = jnp.sort(symbols, axis=1)  # [B, T]
    else:  # copy: out[i] = in[i - offset], wrapping around
        target_symbols = jnp.roll(symbols, spec.copy_offset, axis=1)  # [B, T]
    return Batch(source[symbols], full, every, source[target_symbols], ones)


def sample_batches(spec: TaskSpec, source: jax.Array, rng: jax.Array, count: int) -> Batch:
    """``count`` independent batches stacked on a leading axis: every field ``[K, B, T]``."""
    return jax.vmap(lambda key: sample_batch(spec, source, key))(jax.random.split(rng, count))


def ideal_attention(spec: TaskSpec, inputs: np.ndarray) -> np.ndarray:
    """Where each output position of a toy task *should* look.

    Args:
      spec: a toy task.
      inputs: ``[B, T]`` model ids of one batch's inputs.
    Returns:
      ``[B, T, T]`` rows that sum to 1: uniform over the key positions holding the needed input symbol.
      For reverse and copy that is one position; for sort it is every copy of the i-th smallest symbol
      (equal symbols are indistinguishable, so any of them is right).
    """
    if spec.task not in TOY_TASKS:
        raise ValueError(f"Only the toy tasks {TOY_TASKS} have a known ideal attention, not {spec.task!r}.")
    inputs = np.asarray(inputs)
    B, T = inputs.shape
    ideal = np.zeros((B, T, T), np.float32)  # [B, T, T]
    rows = np.arange(T)
    if spec.task == "reverse":
        ideal[:, rows, T - 1 - rows] = 1.0
    elif spec.task == "copy":
        ideal[:, rows, (rows - spec.copy_offset) % T] = 1.0
    else:
        # Toy symbols' tiktoken ids (so their model ids) increase in TOY_SYMBOLS order, so sorting model
        # ids sorts the symbols.
        for b in range(B):
            needed = np.sort(inputs[b])  # [T] the symbol each output position must produce
            ideal[b] = (needed[:, None] == inputs[b][None, :]).astype(np.float32)  # [T, T]
        ideal /= ideal.sum(axis=-1, keepdims=True)
    return ideal


def attention_closeness(attention_weights: np.ndarray, ideal: np.ndarray) -> np.ndarray:
    """How much attention each head puts where the ideal pattern says, averaged over queries.

    Args:
      attention_weights: ``[L, B, H, T, T]`` from ``EncoderOutput.attention_weights``.
      ideal: ``[B, T, T]`` from ``ideal_attention``.
    Returns:
      ``[L, H]`` scores in [0, 1]: 1.0 means every query puts all its weight on a correct key; a head
      attending uniformly scores about 1/T.
    """
    attention_weights = np.asarray(attention_weights)
    ideal = np.asarray(ideal)
    if (
        attention_weights.ndim != 5
        or attention_weights.shape[1] != ideal.shape[0]
        or attention_weights.shape[-2:] != ideal.shape[-2:]
    ):
        raise ValueError(
            f"attention_weights {attention_weights.shape} and ideal {ideal.shape} do not describe the same "
            f"batch: expected [L, B, H, T, T] and [B, T, T]."
        )
    on_target = (ideal > 0).astype(np.float32)  # [B, T, T]
    mass = np.einsum("lbhts,bts->lbht", attention_weights, on_target)  # [L, B, H, T]
    return mass.mean(axis=(1, 3))  # [L, H]
