"""Recompile-free inference: one compiled forward per shape bucket, inputs padded and masked.

JAX compiles a new program for every input shape. A person typing a sentence produces a new length on
almost every keystroke, and a compile costs ~0.5 s here against ~0.3 ms for the forward itself. So inputs
are padded to the next power-of-two bucket (8, 16, ..., max_len) with a padding mask, every bucket is
compiled once up front, and results are sliced back to the real length. Parameters are an argument of
the compiled function, not a constant inside it, so a freshly trained model reuses the same programs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.encoder import EncoderOutput, build_model
from explorer.text.vocab import PAD

SMALLEST_BUCKET = 8
# Sentences per call of ``run_in_batches``. The batch size is a compiled shape, so it stays fixed (the last
# batch is padded with copies); 32 sentences of at most 64 tokens keep one call's outputs to tens of megabytes.
BATCH_SIZE = 32


def bucket_lengths(max_len: int, smallest: int = SMALLEST_BUCKET) -> tuple[int, ...]:
    """Powers of two from ``smallest`` up to ``max_len``; ``max_len`` itself is always the last bucket."""
    buckets = []
    size = smallest
    while size < max_len:
        buckets.append(size)
        size *= 2
    buckets.append(max_len)
    return tuple(buckets)


def bucket_for(length: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds ``length`` tokens."""
    for size in buckets:
        if length <= size:
            return size
    raise ValueError(f"{length} tokens do not fit the largest bucket ({buckets[-1]}); truncate the input first.")


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path:
    """Keeps compiled programs on disk so a restarted app skips most of its warm-up compiles."""
    path = Path(directory or os.environ.get("EXPLORER_JAX_CACHE", Path.home() / ".cache" / "encoder-explorer" / "jax"))
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Our programs compile in well under JAX's default 1 s threshold; cache them all the same.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def use_synchronous_dispatch() -> None:
    """Runs jitted calls on the calling thread instead of handing them to JAX's dispatch thread.

    Asynchronous dispatch pays off when Python has other work to queue while the device computes. The
    explorer never does: it reads every result at once, and at our sizes the thread hand-off was a
    quarter of the call (32-token forward, alternating processes: 0.27 ms synchronous against
    0.35-0.42 ms asynchronous). It is a process-wide JAX setting, so only entry points call it.
    """
    jax.config.update("jax_cpu_enable_async_dispatch", False)


class Inspection(NamedTuple):
    """One sentence through the encoder, batch axis removed, sliced to its real length ``T``.

    Same fields as ``EncoderOutput`` (numpy arrays): logits [T, V] ([T, 0] without an output head),
    final_hidden [T, D], token_embeddings [T, D], positional_encodings [T, D], token_type_embeddings
    [T, D], embedding_sum [T, D], attention_scores and
    attention_weights [L, H, T, T], attention_outputs and ffn_outputs [L, T, D], hidden_states
    [2L+1, T, D], layer_norm_inputs and layer_norm_outputs [N, T, D].
    """

    logits: np.ndarray
    final_hidden: np.ndarray
    token_embeddings: np.ndarray
    positional_encodings: np.ndarray
    token_type_embeddings: np.ndarray
    embedding_sum: np.ndarray
    attention_scores: np.ndarray
    attention_weights: np.ndarray
    attention_outputs: np.ndarray
    ffn_outputs: np.ndarray
    hidden_states: np.ndarray
    layer_norm_inputs: np.ndarray
    layer_norm_outputs: np.ndarray


def _slice_one(output: EncoderOutput, index: int, length: int) -> Inspection:
    """Takes sentence ``index`` of a padded batch and cuts every token axis to ``length``."""
    t = slice(0, length)
    return Inspection(
        logits=output.logits[index, t],
        final_hidden=output.final_hidden[index, t],
        token_embeddings=output.token_embeddings[index, t],
        positional_encodings=output.positional_encodings[t],
        token_type_embeddings=output.token_type_embeddings[index, t],
        embedding_sum=output.embedding_sum[index, t],
        attention_scores=output.attention_scores[:, index, :, t, t],
        attention_weights=output.attention_weights[:, index, :, t, t],
        attention_outputs=output.attention_outputs[:, index, t],
        ffn_outputs=output.ffn_outputs[:, index, t],
        hidden_states=output.hidden_states[:, index, t],
        layer_norm_inputs=output.layer_norm_inputs[:, index, t],
        layer_norm_outputs=output.layer_norm_outputs[:, index, t],
    )


@dataclass
class CompileStats:
    traces: int = 0  # times the forward was traced, i.e. a new program was compiled or loaded
    calls: int = 0


class InferenceEngine:
    """Compiled forward passes for one config, shared by every user of that config.

    The engine holds no parameters: callers pass their own (as device arrays, e.g. from
    ``jax.device_put``, so each call does not copy them to the device again).
    """

    def __init__(self, config: ModelConfig, smallest_bucket: int = SMALLEST_BUCKET):
        self.config = config
        self.buckets = bucket_lengths(config.max_len, min(smallest_bucket, config.max_len))
        self.stats = CompileStats()
        self._lock = threading.Lock()
        model = build_model(config)

        def forward(params, token_ids, mask, head_mask, causal):
            # Python side effects run only while tracing: this counts compiles, not calls.
            self.stats.traces += 1
            return model.apply(params, None, token_ids, mask, head_mask, causal=causal)

        self._forward = jax.jit(forward)

    def default_head_mask(self) -> np.ndarray:
        return np.ones((self.config.num_layers, self.config.num_heads), np.float32)  # [L, H]

    def _run_padded(self, params: hk.Params, batch_ids: list[np.ndarray], head_mask, causal: bool):
        longest = max(len(ids) for ids in batch_ids)
        if longest == 0:
            raise ValueError("There are no tokens to run; type some text.")
        bucket = bucket_for(longest, self.buckets)
        tokens = np.full((len(batch_ids), bucket), PAD, np.int32)  # [B, T]
        mask = np.zeros((len(batch_ids), bucket), bool)  # [B, T]
        for row, ids in enumerate(batch_ids):
            tokens[row, : len(ids)] = ids
            mask[row, : len(ids)] = True
        if head_mask is None:
            head_mask = self.default_head_mask()
        head_mask = np.asarray(head_mask, np.float32)
        if head_mask.shape != (self.config.num_layers, self.config.num_heads):
            raise ValueError(
                f"head_mask must have shape (layers, heads) = "
                f"{(self.config.num_layers, self.config.num_heads)}, got {head_mask.shape}."
            )
        self.stats.calls += 1
        output = self._forward(params, tokens, mask, head_mask, np.bool_(causal))
        return jax.device_get(output)

    def run(
        self,
        params: hk.Params,
        model_ids: np.ndarray,  # [T] int32
        head_mask: np.ndarray | None = None,  # [L, H]
        causal: bool = False,
    ) -> Inspection:
        """Runs one sentence and returns every intermediate, sliced to its ``T`` real tokens."""
        model_ids = np.asarray(model_ids, np.int32)
        output = self._run_padded(params, [model_ids], head_mask, causal)
        return _slice_one(output, 0, len(model_ids))

    def run_batch(
        self, params: hk.Params, batch_ids: list[np.ndarray], head_mask=None, causal: bool = False
    ) -> list[Inspection]:
        """Runs several sentences padded into one batch (the batch size is a shape too: keep it fixed)."""
        output = self._run_padded(params, [np.asarray(i, np.int32) for i in batch_ids], head_mask, causal)
        return [_slice_one(output, row, len(ids)) for row, ids in enumerate(batch_ids)]

    def warmup(self, params: hk.Params, lengths: tuple[int, ...] | None = None, batch_size: int = 1) -> int:
        """Compiles the buckets (all of them by default) so later calls never compile; returns traces."""
        before = self.stats.traces
        with self._lock:
            for bucket in lengths or self.buckets:
                ids = [np.full(bucket, PAD, np.int32)] * batch_size
                self._run_padded(params, ids, None, False)
        return self.stats.traces - before

    def lower_text(self, params: hk.Params, length: int) -> tuple[str, dict]:
        """The jaxpr of the forward at ``length``'s bucket, and XLA's cost analysis of its program."""
        bucket = bucket_for(length, self.buckets)
        args = (
            params,
            jnp.zeros((1, bucket), jnp.int32),
            jnp.ones((1, bucket), bool),
            jnp.asarray(self.default_head_mask()),
            jnp.asarray(False),
        )
        jaxpr = jax.make_jaxpr(self._forward)(*args)
        compiled = self._forward.lower(*args).compile()
        cost = compiled.cost_analysis()
        if isinstance(cost, list):  # older jax returned one dict per device
            cost = cost[0] if cost else {}
        return str(jaxpr), dict(cost or {})


def run_in_batches(
    engine: InferenceEngine,
    params: hk.Params,
    batch_ids: Sequence[np.ndarray],
    causal: bool = False,
    batch_size: int = BATCH_SIZE,
) -> Iterator[tuple[int, Inspection]]:
    """Runs many sentences in fixed-size batches; yields ``(index into batch_ids, Inspection)``.

    Sentences are grouped by length, so a batch pads to the bucket of similar sentences rather than of
    the longest one. An ``Inspection`` holds views into its whole batch's outputs (logits included):
    copy what you keep, so the batch is freed when the next one runs.
    """
    order = sorted(range(len(batch_ids)), key=lambda i: len(batch_ids[i]))
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        ids = [batch_ids[i] for i in chosen]
        ids += [ids[-1]] * (batch_size - len(ids))  # the batch size is a compiled shape: keep it fixed
        results = engine.run_batch(params, ids, causal=causal)
        yield from zip(chosen, results[: len(chosen)], strict=True)
