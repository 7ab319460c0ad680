"""What a live run records for replay: a fixed probe input, and snapshots of the model on it.

Glossary of shapes:
  T: probe length, P: scored probe positions, V: vocabulary size
  L: layers, H: heads, N: tracked tokens, B: held-out batch size

A snapshot holds the parameters at one step (a toy model's are ~0.5 MB, so dozens fit in memory)
together with what the Train page replays: attention of the probe, its predictions and a 2-D view of
the embeddings. The probe of a toy task is a batch of that task (``explorer.training.tasks.sample_batch``), so
its targets and ideal attention are the task's own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import haiku as hk
import jax
import numpy as np

from explorer.interpret.analysis import pca, softmax
from explorer.text.tokenizer import display_text
from explorer.text.vocab import MASK, NUM_SPECIAL, Vocab
from explorer.training.tasks import TOY_TASKS, TaskSpec, attention_closeness, ideal_attention, sample_batch, toy_source

PROBE_TEXT = "Mary met John at the park. She gave him a book."
PROBE_SEED = 1234  # the toy probe's batch: fixed, so every run and every snapshot shows the same input
PRONOUNS = {" She", " she", " he", " He", " him", " her", " his"}  # what the mlm probe hides


@dataclass(frozen=True)
class Probe:
    """A fixed input whose attention and predictions are recorded at every snapshot."""

    inputs: np.ndarray  # [T] model ids fed to the encoder
    labels: tuple[str, ...]  # [T] display text of each input token
    pieces: tuple[str, ...]  # [T] raw text of each input token (what head-role rules read)
    positions: np.ndarray  # [P] positions whose prediction is shown
    targets: np.ndarray  # [P] the right answers there
    target_labels: tuple[str, ...]  # [P] display text of the targets
    ideal: np.ndarray | None  # [T, T] ideal attention (toy tasks) or None


@dataclass(frozen=True)
class Snapshot:
    """The model at one step, and what the Train page replays from it."""

    step: int
    params: hk.Params  # device arrays (immutable: safe to share between threads)
    attention: np.ndarray  # [L, H, T, T] attention weights on the probe
    predicted: tuple[str, ...]  # [P] predicted token at each probe position
    confidence: np.ndarray  # [P] probability of that prediction
    embedding_points: np.ndarray  # [N, 2] tracked token embeddings, principal-component plane
    embedding_labels: tuple[str, ...]  # [N]
    closeness: np.ndarray | None  # [L, H] probe attention vs the ideal (toy tasks)


def token_label(vocab: Vocab, model_id: int) -> str:
    return display_text(vocab.token_text(model_id))


def make_probe(spec: TaskSpec, vocab: Vocab, held_out: np.ndarray, named_text: bool) -> Probe:
    """The probe of a run: ``PROBE_TEXT`` (or, for an uploaded text, the start of its held-out part) for
    the text tasks; one batch row of the task for the toy tasks.

    Args:
      held_out: ``[N]`` model ids of the held-out text (text tasks).
      named_text: whether the run trains on a named text (whose vocabulary covers ``PROBE_TEXT``).
    """
    ideal = None
    if spec.is_text:
        if named_text:
            inputs, _ = vocab.to_model_ids(vocab.tokenizer().encode(PROBE_TEXT, spec.seq_len).ids)
        else:
            inputs = np.asarray(held_out[: min(24, spec.seq_len)], np.int32)
        inputs = np.asarray(inputs[: spec.seq_len], np.int32)
        if spec.task == "causal":
            positions = np.arange(len(inputs) - 1)
            targets = inputs[1:]
        else:
            pieces = [vocab.token_text(int(i)) for i in inputs]
            positions = np.array([i for i, p in enumerate(pieces) if p in PRONOUNS] or list(range(1, len(inputs), 5)))
            targets = inputs[positions]
            inputs = inputs.copy()
            inputs[positions] = MASK
    else:
        one_row = dataclasses.replace(spec, batch_size=1)
        batch = jax.device_get(
            sample_batch(one_row, toy_source(vocab, spec.num_symbols), jax.random.PRNGKey(PROBE_SEED))
        )
        inputs, positions, targets = batch.inputs[0], batch.positions[0], batch.targets[0]
        ideal = ideal_attention(spec, batch.inputs)[0]  # [T, T]
    inputs = np.asarray(inputs, np.int32)
    return Probe(
        inputs=inputs,
        labels=tuple(token_label(vocab, int(i)) for i in inputs),
        pieces=tuple(vocab.token_text(int(i)) for i in inputs),
        positions=np.asarray(positions, np.int32),
        targets=np.asarray(targets, np.int32),
        target_labels=tuple(token_label(vocab, int(t)) for t in targets),
        ideal=ideal,
    )


def tracked_tokens(spec: TaskSpec, vocab: Vocab) -> np.ndarray:
    """``[N]`` model ids whose embeddings the snapshots follow: the toy symbols, or the first text tokens."""
    if spec.task in TOY_TASKS:
        return toy_source(vocab, spec.num_symbols)
    return np.arange(NUM_SPECIAL, min(vocab.size, NUM_SPECIAL + 60))


def take_snapshot(
    step: int, params: hk.Params, inspected: dict, probe: Probe, spec: TaskSpec, vocab: Vocab
) -> tuple[Snapshot, np.ndarray | None]:
    """A snapshot from the output of ``TrainFunctions.inspect`` (host arrays), and the per-head closeness
    to the ideal pattern on the held-out batch (``[L, H]``, toy tasks; else None)."""
    probs = softmax(inspected["probe_logits"])  # [P, V]
    predicted_ids = probs.argmax(-1)  # [P]
    closeness = probe_closeness = None
    if probe.ideal is not None:
        ideal = ideal_attention(spec, inspected["eval_inputs"])  # [B, T, T]
        closeness = attention_closeness(inspected["eval_attention"], ideal)  # [L, H]
        probe_closeness = attention_closeness(inspected["probe_attention"][:, None], probe.ideal[None])  # [L, H]
    tracked = tracked_tokens(spec, vocab)
    table = np.asarray(jax.device_get(params["encoder/token_embedding"]["embeddings"]))[tracked]  # [N, D]
    snapshot = Snapshot(
        step=step,
        params=params,
        attention=np.asarray(inspected["probe_attention"]),
        predicted=tuple(token_label(vocab, int(i)) for i in predicted_ids),
        confidence=probs[np.arange(len(predicted_ids)), predicted_ids].astype(np.float32),
        embedding_points=pca(table, components=2).coords.astype(np.float32),
        embedding_labels=tuple(token_label(vocab, int(i)) for i in tracked),
        closeness=probe_closeness,
    )
    return snapshot, closeness
