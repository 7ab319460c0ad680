"""The compiled programs of one training setup, data parallel over the CPU's devices.

Glossary of shapes:
  K: steps one compiled call can run
  B: batch size, T: sequence length, V: vocabulary size
  E: evaluation batches; L: layers, H: heads; T', P': probe length and scored probe positions

Where the speed comes from (MLM at batch 32 x 64 tokens, default model, 2 CPU cores; measured with
bench/bench_training.py, where the variants alternate in one process):
  * The last layer runs only at the scored positions (``Encoder``'s ``predict_at``): masked-token
    prediction reads 15% of the positions, and the rest of the last layer after its attention is
    position-wise. Together with attention's layout (explorer/model/attention.py) this took the step
    from ~39 to ~50 steps/s.
  * Data parallel: the batch is split over one JAX CPU device per core (``compile_functions``), ~1.15x
    over one device running every core.
  * Fusing steps: ``lax.scan`` runs up to K steps, sampling each batch on device, in one call, so the
    Python loop wakes only to read metrics, once per call (reading blocks JAX's dispatch). A jitted call
    from Python costs dispatch, argument handling and (past glibc's mmap threshold) fresh page-faulted
    scratch memory; fused runs ~1.1-1.2x as fast as one call per step. The XLA kernels themselves (matmuls
    and the [B, H, T, T] softmax) remain most of a step's ~18 ms.

How many of the K steps a call runs is an input (its ``active`` flags; a step not run costs nothing), so
a live trainer sizes its calls by time without compiling a program per size, and Step runs exactly one.

Over several processes (``explorer.training.distributed``; one per host, or several on one machine) the
mesh holds every process's devices and the same programs run in each process: a device draws its own
rows of each global batch and the collective sums the gradients across processes. Inputs are made global
arrays (``jax.make_array_from_process_local_data``, replicated) and results are read from this process's
first device, so a caller sees the same functions as on one machine.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from explorer.model.config import ModelConfig
from explorer.model.encoder import build_model
from explorer.training.config import TrainConfig
from explorer.training.step import (
    TrainState,
    batch_logits,
    make_step_fn,
    param_layout,
    scored_logits,
    skipped_metrics,
    weighted_loss,
)
from explorer.training.tasks import Batch, sample_batches, sample_rows

BATCH_AXIS = "batch"  # the mesh axis a training step splits its batch over


class TrainFunctions(NamedTuple):
    """The compiled functions of one (model, training) configuration."""

    devices: int  # how many devices a step splits its batch over (in every process of the run)
    place: object  # host array -> where step and chunk read their ``source`` (placed once, read every call)
    step: object  # (state, source) -> (state, metrics): one sampled step per call (the unfused loop)
    chunk: object  # (state, source, active [K]) -> (state, metrics [K]): the active steps, fused
    inspect: object  # (params, eval_source, eval_key, probe_inputs [1, T'], probe_positions [1, P']) -> dict
    compiled: set  # names of the functions above that have run once (so later calls do not compile)


def training_devices(batch_size: int, limit: int | None = None) -> int:
    """How many devices a training step splits a batch over: the most (up to ``limit``) that divide it."""
    available = len(jax.devices()) if limit is None else max(1, min(limit, len(jax.devices())))
    return next(n for n in range(available, 0, -1) if batch_size % n == 0)


def training_mesh(batch_size: int, limit: int | None = None) -> Mesh:
    """The devices a step runs on: ``training_devices`` of them, or, in a run over several processes, every
    device of every process (each process must take part in every step)."""
    if jax.process_count() == 1:
        return Mesh(np.array(jax.devices()[: training_devices(batch_size, limit)]), (BATCH_AXIS,))
    devices = jax.devices()
    if batch_size % len(devices):
        raise ValueError(
            f"The batch of {batch_size} does not split evenly over the run's {len(devices)} devices "
            f"({jax.process_count()} processes); choose a --batch-size that is a multiple of {len(devices)}."
        )
    return Mesh(np.array(devices), (BATCH_AXIS,))


def _first_device_copy(tree):
    """Device 0's copy of replicated arrays: a view, no copy. The rest of the code (the trainer, its
    inspection, the app's inference engine) then works on one device, as if training had too."""
    return jax.tree.map(lambda x: x.addressable_shards[0].data, tree)


def compile_functions(
    model_config: ModelConfig, train_config: TrainConfig, devices: int | None = None
) -> TrainFunctions:
    """Jitted step, fused chunk, and inspection (evaluation + probe) for one pair of configs.

    The chunk's length K (``steps_per_chunk``) is a static shape: one compile per chunk length. Steps
    whose ``active`` flag is False are skipped (``lax.cond``) and change nothing. Cached per model config
    and ``train_config.program_key()``: a reset, a new seed, another learning rate or a second trainer with
    the same shapes reuse the compiled programs.

    Data parallel: the step runs on ``training_devices(batch_size, devices)`` CPU devices (one per core;
    see ``explorer/__init__.py``), each sampling and differentiating its share of the batch, then summing
    gradients, so every device applies the same update. On a CPU this beats one device using every core:
    XLA splits a single small matrix product over threads poorly, while two devices run whole programs
    side by side. Measured here (2 cores, MLM at batch 32 x 64, default model): see bench/bench_training.py.
    The step and chunk take and return arrays on device 0.
    """
    return _compile(model_config, train_config.program_key(), devices)


@functools.lru_cache(maxsize=8)
def _compile(model_config: ModelConfig, train_config: TrainConfig, devices: int | None) -> TrainFunctions:
    spec = train_config.task_spec
    mesh = training_mesh(spec.batch_size, devices)
    rows = spec.batch_size // mesh.size  # each device's share of the batch
    replicated = NamedSharding(mesh, PartitionSpec())
    several = jax.process_count() > 1
    step = make_step_fn(model_config, train_config, axis_name=BATCH_AXIS)
    groups = len(param_layout(model_config).groups)
    model = build_model(model_config)

    def sampled_step(state: TrainState, source: jax.Array, active: jax.Array):
        batch_rng, rng = jax.random.split(state.rng)
        # Each device draws only its rows of the batch, each row from its own index: the batches, and so
        # the training run, are then the same on any number of devices and processes (up to the order of
        # float sums).
        first = jax.lax.axis_index(BATCH_AXIS) * rows
        batch = sample_rows(spec, source, batch_rng, first + jnp.arange(rows))  # [B / devices, ...]
        return step(state._replace(rng=jnp.where(active, rng, state.rng)), batch, active)

    def chunk(state: TrainState, source: jax.Array, active: jax.Array):
        def one(s: TrainState, a: jax.Array):
            # A skipped step costs nothing: the cond runs one branch (a where would compute the step).
            return jax.lax.cond(
                a, lambda s: sampled_step(s, source, jnp.bool_(True)), lambda s: (s, skipped_metrics(s, groups)), s
            )

        return jax.lax.scan(one, state, active)

    def global_input(x):
        """Over several processes a jitted call takes global arrays: this process's copy of a replicated
        input (every process holds the same value) becomes one."""
        if isinstance(x, jax.Array) and x.sharding == replicated:
            return x
        return jax.make_array_from_process_local_data(replicated, np.asarray(x))

    def on_every_device(fn, num_args: int):
        """``fn`` run on every device of the mesh; inputs are copied to each device, results read from one."""
        mapped = jax.shard_map(fn, mesh=mesh, in_specs=(PartitionSpec(),) * num_args, out_specs=PartitionSpec())
        compiled = jax.jit(mapped, in_shardings=replicated, out_shardings=replicated)
        if several:
            return lambda *args: _first_device_copy(compiled(*jax.tree.map(global_input, args)))
        return lambda *args: _first_device_copy(compiled(*args))

    def inspect(
        params: hk.Params,
        eval_source: jax.Array,
        eval_key: jax.Array,
        probe_inputs: jax.Array,
        probe_positions: jax.Array,
    ):
        """Held-out loss/accuracy, and the probe's attention and predictions: one compiled program,
        because on this CPU each distinct program costs seconds to compile and microseconds to run."""
        batches = sample_batches(spec, eval_source, eval_key, train_config.eval_batches)

        def one(batch: Batch):
            logits = batch_logits(model, params, None, batch, spec.causal, is_training=False)  # [B, P', V]
            return weighted_loss(logits, batch.targets, batch.weights)

        losses, correct, counts = jax.lax.map(one, batches)  # [E] each
        total = jnp.maximum(jnp.sum(counts), 1.0)
        probe_mask = jnp.ones(probe_inputs.shape, bool)  # [1, T']
        probe = model.apply(params, None, probe_inputs, probe_mask, causal=spec.causal)
        result = {
            "loss": jnp.sum(losses) / total,
            "accuracy": jnp.sum(correct) / total,
            "probe_attention": probe.attention_weights[:, 0],  # [L, H, T', T']
            "probe_logits": scored_logits(params, probe.final_hidden, probe_positions)[0],  # [P', V]
        }
        if not spec.is_text:  # attention on a whole held-out batch, to score against the ideal pattern
            first = jax.tree.map(lambda x: x[0], batches)
            output = model.apply(params, None, first.inputs, first.input_mask, causal=spec.causal)
            result["eval_inputs"] = first.inputs  # [B, T]
            result["eval_attention"] = output.attention_weights  # [L, B, H, T, T]
        return result

    return TrainFunctions(
        devices=mesh.size,
        place=global_input if several else jax.device_put,
        step=on_every_device(lambda state, source: sampled_step(state, source, jnp.bool_(True)), 2),
        chunk=on_every_device(chunk, 3),
        inspect=jax.jit(inspect),
        compiled=set(),
    )


def eval_key(seed: int) -> jax.Array:
    """The key of a run's held-out batches: fixed per seed, so every evaluation scores the same batches."""
    return jax.random.PRNGKey(10_000 + seed)
