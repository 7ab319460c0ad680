"""The training loop's pure parts: config, state, loss, and jitted steps fused with ``lax.scan``.

Glossary of shapes:
  K: steps fused into one compiled call
  B: batch size, T: sequence length, V: vocabulary size
  G: parameter groups (embedding, each layer, output head)
  E: evaluation batches

Where the speed comes from (MLM at batch 32 x 64 tokens, default model, 2 CPU cores; measured with
bench/bench_training.py, where the variants alternate in one process):
  * The last layer runs only at the scored positions (``Encoder``'s ``predict_at``): masked-token
    prediction reads 15% of the positions, and the rest of the last layer after its attention is
    position-wise. Together with attention's layout (model.py) this took the step from ~39 to ~50 steps/s.
  * Data parallel: the batch is split over one JAX CPU device per core (``compile_functions``), ~1.15x
    over one device running every core.
  * Fusing steps: ``lax.scan`` runs K steps, sampling each batch on device, in one call, so the Python
    loop wakes only to read metrics, once per chunk (reading blocks JAX's dispatch). A jitted call from
    Python costs dispatch, argument handling and (past glibc's mmap threshold) fresh page-faulted scratch
    memory; fused runs ~1.1-1.2x as fast as one call per step. The XLA kernels themselves (matmuls and the
    [B, H, T, T] softmax) remain most of a step's ~18 ms.

Blow-ups: a step whose loss, gradient or new parameters are not finite is not applied; the state is
flagged ``diverged`` and every later step in the chunk is a no-op, so the parameters kept are the last
finite ones.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from explorer.config import ModelConfig
from explorer.model import build_model, init_params, output_logits, take_positions
from explorer.tasks import Batch, TaskSpec, sample_batch, sample_batches
from explorer.texts import TEXT_NAMES, UPLOADED

DEFAULT_SEQ_LEN = {"mlm": 64, "causal": 64, "reverse": 16, "sort": 16, "copy": 16}


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the architecture is a separate ``ModelConfig``)."""

    task: str = "mlm"
    text: str = "english"  # a named training text of explorer.texts, or "uploaded" (text tasks only)
    steps: int = 2000
    batch_size: int = 32
    seq_len: int = 64  # training windows are short; sinusoidal positions still let the app run longer text
    learning_rate: float = 3e-3  # peak after warm-up; small post-LN models tolerate this with clipping
    warmup_steps: int = 100  # Adam's early moment estimates are noisy; ramping up avoids a post-LN blow-up
    end_lr_fraction: float = 0.1  # cosine decay to 10% of peak: late steps refine instead of bouncing
    weight_decay: float = 0.01
    clip_norm: float = 1.0  # clip_by_global_norm: a single bad batch cannot throw the weights away
    steps_per_chunk: int = 20  # steps per compiled call: ~0.3 s at the default size, so the UI stays live
    eval_every: int = 100  # steps between evaluations on held-out data
    eval_batches: int = 4
    seed: int = 0
    mask_rate: float = 0.15
    num_symbols: int = 16
    copy_offset: int = 3

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "steps_per_chunk", "eval_every", "eval_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}.")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.clip_norm <= 0:
            raise ValueError("warmup_steps and weight_decay must be >= 0 and clip_norm > 0.")
        if self.text not in (*TEXT_NAMES, UPLOADED):
            raise ValueError(f"text must be one of {(*TEXT_NAMES, UPLOADED)}, got {self.text!r}.")
        self.task_spec  # validates the task fields  # noqa: B018

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(
            task=self.task,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            mask_rate=self.mask_rate,
            num_symbols=self.num_symbols,
            copy_offset=self.copy_offset,
        )

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Where the Train page starts (the rest of its defaults are TrainConfig's and ModelConfig's): a toy task
# that learns in seconds, at a size that trains live on a laptop while its attention visibly forms.
LIVE_TASK = "reverse"
LIVE_STEPS = 600
LIVE_MODEL = {"num_layers": 2, "num_heads": 4, "d_model": 64}


def live_chunk_size(batch_size: int, seq_len: int) -> int:
    """Steps fused per compiled call for live training: ~0.2-0.4 s of work at the page's sizes, so the
    live view gets fresh numbers about twice a second."""
    return int(min(50, max(2, round(10_240 / (batch_size * seq_len)))))


def live_eval_every(steps: int, chunk: int) -> int:
    """Steps between evaluations (and snapshots) of a live run: about 40 over the run, on chunk ends."""
    return max(chunk, math.ceil(steps / 40 / chunk) * chunk)


def default_train_config(task: str, **changes) -> TrainConfig:
    """A config with the task's default sequence length (toy tasks use short sequences)."""
    return TrainConfig(task=task, seq_len=DEFAULT_SEQ_LEN[task]).replace(**changes)


class TrainState(NamedTuple):
    flat_params: jax.Array  # [P] every parameter in one vector (see ParamLayout)
    opt_state: optax.OptState
    rng: jax.Array  # [2] PRNG key for batches and dropout
    step: jax.Array  # [] int32 steps applied so far
    diverged: jax.Array  # [] bool: a non-finite step happened; params are the last finite ones


def _group_of(module: str) -> str:
    if module.startswith("encoder/layer_"):
        return f"layer {int(module.split('/')[1].split('_')[1]) + 1}"
    # "encoder" holds a learned positional table; token types and their layer norm come from BERT configs.
    if module in ("encoder/token_embedding", "encoder", "encoder/token_type_embedding", "encoder/embedding_norm"):
        return "embedding"
    return "output"


@functools.lru_cache(maxsize=16)
def init_params_shapes(model_config: ModelConfig) -> hk.Params:
    """Parameter shapes only, without allocating or running anything."""
    return jax.eval_shape(lambda: init_params(model_config, 0))


class ParamLayout:
    """Every parameter of a model in one flat vector, and how to get the Haiku dict back.

    Why flat: the optimizer, the finite-check, the keep-or-apply select and the per-group telemetry then
    run as a handful of vector operations instead of a few operations per parameter array (~35 arrays
    for the default model). That shortens the compiled step and, on a CPU where every small kernel has a
    fixed cost, its run time too.
    """

    def __init__(self, model_config: ModelConfig):
        shapes = init_params_shapes(model_config)
        zeros = jax.tree.map(lambda leaf: np.zeros(leaf.shape, np.float32), shapes)
        flat, self._unravel = ravel_pytree(zeros)
        self.size = int(flat.size)
        groups = sorted(
            {_group_of(m) for m in shapes},
            key=lambda g: (g != "embedding", g == "output", int(g.split()[1]) if g.startswith("layer") else 0),
        )
        self.groups: tuple[str, ...] = tuple(groups)
        group_tree = hk.data_structures.map(
            lambda module, _name, leaf: np.full(leaf.shape, groups.index(_group_of(module)), np.float32), shapes
        )
        # Weight decay applies to matrices and embeddings, not to biases or layer-norm gains.
        decay_tree = hk.data_structures.map(
            lambda _module, name, leaf: np.full(leaf.shape, float(name in ("w", "embeddings")), np.float32), shapes
        )
        self.group_ids = np.asarray(ravel_pytree(group_tree)[0]).astype(np.int32)  # [P]
        self.decay_mask = np.asarray(ravel_pytree(decay_tree)[0])  # [P]
        # Each group is a few contiguous runs of the flat vector (ravel_pytree orders modules by name).
        edges = np.flatnonzero(np.diff(self.group_ids)) + 1
        starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [self.size]])
        self._runs = tuple((int(a), int(b), int(self.group_ids[a])) for a, b in zip(starts, ends, strict=True))

    def flatten(self, params: hk.Params) -> jax.Array:
        return ravel_pytree(params)[0]  # [P]

    def unflatten(self, flat: jax.Array) -> hk.Params:
        return self._unravel(flat)

    def group_norms(self, flat: jax.Array) -> jax.Array:
        """L2 norm of each group's entries: ``[P]`` -> ``[G]``."""
        # Sums over static slices, not ``segment_sum``: XLA's CPU backend runs a segment sum as a serial
        # scatter-add, ~0.6 ms for the default model's 166k parameters, and a step takes three of them.
        squares = [jnp.float32(0.0)] * len(self.groups)
        for start, end, group in self._runs:
            squares[group] = squares[group] + jnp.sum(jnp.square(flat[start:end]))
        return jnp.sqrt(jnp.stack(squares))  # [G]


@functools.lru_cache(maxsize=16)
def param_layout(model_config: ModelConfig) -> ParamLayout:
    return ParamLayout(model_config)


def parameter_groups(model_config: ModelConfig) -> tuple[str, ...]:
    """Group names for telemetry, in display order: ``embedding``, ``layer 1`` ... ``layer L``, ``output``."""
    return param_layout(model_config).groups


def _decoupled_weight_decay(rate: float, mask: np.ndarray) -> optax.GradientTransformation:
    """AdamW's decay term ``rate * mask * params`` for a flat parameter vector."""

    def update(updates, state, params):
        return updates + rate * mask * params, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config: TrainConfig, layout: ParamLayout) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW on a warm-up + cosine-decay schedule (no decay on norms/biases)."""
    warmup = min(config.warmup_steps, max(config.steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(config.steps, warmup + 1),
        end_value=config.learning_rate * config.end_lr_fraction,
    )
    return optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.scale_by_adam(),
        _decoupled_weight_decay(config.weight_decay, layout.decay_mask),
        optax.scale_by_learning_rate(schedule),
    )


def init_state(model_config: ModelConfig, train_config: TrainConfig, params: hk.Params | None = None) -> TrainState:
    """Fresh parameters (or the given ones) and optimizer state, seeded by ``train_config.seed``."""
    if params is None:
        return _state_builder(model_config, train_config)(None)
    return _state_builder(model_config, train_config)(jax.device_put(params))


@functools.lru_cache(maxsize=8)
def _state_builder(model_config: ModelConfig, train_config: TrainConfig):
    """A compiled ``params | None -> TrainState`` (cached: a reset does not compile again)."""
    layout = param_layout(model_config)
    optimizer = make_optimizer(train_config, layout)

    @jax.jit
    def build(params):
        if params is None:
            params = init_params(model_config, train_config.seed)
        flat = layout.flatten(params)
        return TrainState(
            flat_params=flat,
            opt_state=optimizer.init(flat),
            rng=jax.random.PRNGKey(train_config.seed + 1),  # +1: batches must not reuse the init key
            step=jnp.int32(0),
            diverged=jnp.bool_(False),
        )

    return build


def state_params(model_config: ModelConfig, state: TrainState) -> hk.Params:
    """The Haiku parameter dict of a training state (device arrays)."""
    return _unflatten_jit(model_config)(state.flat_params)


@functools.lru_cache(maxsize=16)
def _unflatten_jit(model_config: ModelConfig):
    return jax.jit(param_layout(model_config).unflatten)


def scored_logits(params: hk.Params, final_hidden: jax.Array, positions: jax.Array) -> jax.Array:
    """Logits at the scored positions only: ``[B, T, D]`` hidden, ``[B, P]`` positions -> ``[B, P, V]``."""
    return output_logits(params, take_positions(final_hidden, positions))


def batch_logits(model: hk.Transformed, params: hk.Params, rng, batch: Batch, causal: bool, is_training: bool):
    """Logits at a batch's scored positions, ``[B, P, V]``, for the loss.

    When only some positions are scored (mlm: P = 15% of T), the encoder's ``predict_at`` computes the
    last layer only there and the output head runs only there: that skips most of the last layer and the
    full ``[B, T, V]`` product, and changes no loss or gradient. When every position is scored (causal and
    the toy tasks), the plain forward pass is faster: gathering all T rows (and scattering their gradient
    back) cost the causal task ~15% of its speed.
    """
    if batch.positions.shape[1] < batch.inputs.shape[1]:
        hidden = model.apply(
            params,
            rng,
            batch.inputs,
            batch.input_mask,
            causal=causal,
            is_training=is_training,
            predict_at=batch.positions,
        )  # [B, P, D]
        return output_logits(params, hidden)
    output = model.apply(params, rng, batch.inputs, batch.input_mask, causal=causal, is_training=is_training)
    return scored_logits(params, output.final_hidden, batch.positions)


def weighted_loss(
    logits: jax.Array,  # [B, P, V]
    targets: jax.Array,  # [B, P]
    weights: jax.Array,  # [B, P]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sums of cross-entropy and of correct predictions over weighted positions, and the weight total."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # [B, P]
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)  # [B, P]
    return jnp.sum(losses * weights), jnp.sum(correct * weights), jnp.sum(weights)


class TrainFunctions(NamedTuple):
    """The compiled functions of one (model, training) configuration."""

    step: object  # (state, source) -> (state, metrics): one sampled step per call (the unfused loop)
    chunk: object  # (state, source, active [K]) -> (state, metrics [K]): K fused steps
    inspect: object  # (params, eval_source, probe_inputs [1, T'], probe_positions [1, P']) -> dict


def make_step_fn(model_config: ModelConfig, train_config: TrainConfig, axis_name: str | None = None):
    """The pure training step ``(state, batch, active) -> (state, metrics)`` (not jitted).

    A step with ``active`` False, or after the state diverged, leaves the state unchanged. With
    ``axis_name`` it runs on every device of that mesh axis with ``batch`` being this device's share: the
    loss, counts and gradient are summed over the axis, so every device applies the same update.
    """
    if not model_config.output_head:
        raise ValueError(
            "This model has no output head, so no task's loss can be computed; train a config with output_head=True."
        )
    model = build_model(model_config)
    layout = param_layout(model_config)
    optimizer = make_optimizer(train_config, layout)
    causal = train_config.task_spec.causal

    def loss_fn(flat_params, batch: Batch, rng):
        params = layout.unflatten(flat_params)
        logits = batch_logits(model, params, rng, batch, causal, is_training=True)  # [B, P, V]
        loss, correct, count = weighted_loss(logits, batch.targets, batch.weights)
        return loss, (correct, count)  # sums: the mean needs the count over every device

    def step(state: TrainState, batch: Batch, active: jax.Array) -> tuple[TrainState, dict]:
        rng, dropout_rng = jax.random.split(state.rng)
        flat_params = state.flat_params  # [P]
        if axis_name is not None:
            dropout_rng = jax.random.fold_in(dropout_rng, jax.lax.axis_index(axis_name))
            # Differentiate this device's copy: the gradient is then this device's share, summed below.
            # (Of the replicated parameters themselves, shard_map's autodiff would already return the sum.)
            flat_params = jax.lax.pcast(flat_params, axis_name, to="varying")
        (loss, (correct, count)), grads = jax.value_and_grad(loss_fn, has_aux=True)(flat_params, batch, dropout_rng)
        if axis_name is not None:
            loss, correct, count, grads = jax.lax.psum((loss, correct, count, grads), axis_name)
        count = jnp.maximum(count, 1.0)
        loss, accuracy, grads = loss / count, correct / count, grads / count  # means over the whole batch
        updates, opt_state = optimizer.update(grads, state.opt_state, state.flat_params)  # [P]
        params = state.flat_params + updates  # [P]
        grad_norm = jnp.linalg.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & jnp.all(jnp.isfinite(params))
        apply = active & finite & ~state.diverged
        new_state = TrainState(
            flat_params=jnp.where(apply, params, state.flat_params),
            opt_state=jax.tree.map(lambda n, o: jnp.where(apply, n, o), opt_state, state.opt_state),
            rng=jnp.where(active, rng, state.rng),
            step=state.step + apply.astype(jnp.int32),
            diverged=state.diverged | (active & ~finite),
        )
        weight_norms = layout.group_norms(state.flat_params)  # [G]
        metrics = {
            "loss": loss,
            "accuracy": accuracy,
            "grad_norm": grad_norm,
            "group_grad_norms": layout.group_norms(grads),  # [G]
            "group_update_ratios": layout.group_norms(updates) / jnp.maximum(weight_norms, 1e-12),  # [G]
            "applied": apply,
            "step": new_state.step,
        }
        return new_state, metrics

    return step


BATCH_AXIS = "batch"  # the mesh axis a training step splits its batch over


def training_devices(batch_size: int, limit: int | None = None) -> int:
    """How many devices a training step splits a batch over: the most (up to ``limit``) that divide it."""
    available = len(jax.devices()) if limit is None else max(1, min(limit, len(jax.devices())))
    return next(n for n in range(available, 0, -1) if batch_size % n == 0)


def _first_device_copy(tree):
    """Device 0's copy of replicated arrays: a view, no copy. The rest of the code (the trainer, its
    inspection, the app's inference engine) then works on one device, as if training had too."""
    return jax.tree.map(lambda x: x.addressable_shards[0].data, tree)


@functools.lru_cache(maxsize=8)
def compile_functions(
    model_config: ModelConfig, train_config: TrainConfig, devices: int | None = None
) -> TrainFunctions:
    """Jitted step, fused chunk, and inspection (evaluation + probe) for one pair of configs.

    The number of fused steps is the length of ``active``, a static shape: one compile per chunk size.
    Steps whose ``active`` flag is False change nothing, so a run that ends mid-chunk needs no second
    program. Cached per pair of (hashable, frozen) configs: a reset or a second trainer with the same
    settings reuses the compiled programs.

    Data parallel: the step runs on ``training_devices(batch_size, devices)`` CPU devices (one per core;
    see ``explorer/__init__.py``), each sampling and differentiating its share of the batch, then summing
    gradients, so every device applies the same update. On a CPU this beats one device using every core:
    XLA splits a single small matrix product over threads poorly, while two devices run whole programs
    side by side. Measured here (2 cores, MLM at batch 32 x 64, default model): see bench/bench_training.py.
    The step and chunk take and return arrays on device 0.
    """
    spec = train_config.task_spec
    mesh = Mesh(np.array(jax.devices()[: training_devices(spec.batch_size, devices)]), (BATCH_AXIS,))
    rows = spec.batch_size // mesh.size  # each device's share of the batch
    step = make_step_fn(model_config, train_config, axis_name=BATCH_AXIS)
    model = build_model(model_config)

    def sampled_step(state: TrainState, source: jax.Array, active: jax.Array):
        batch_rng, rng = jax.random.split(state.rng)
        # Every device draws the whole batch and keeps its rows: the batches, and so the training run, are
        # then the same on any number of devices (up to the order of float sums). Drawing costs ~0.5 ms
        # of a ~20 ms step.
        batch = sample_batch(spec, source, batch_rng)  # [B, ...]
        start = jax.lax.axis_index(BATCH_AXIS) * rows
        batch = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, rows), batch)  # [B / devices, ...]
        return step(state._replace(rng=jnp.where(active, rng, state.rng)), batch, active)

    def chunk(state: TrainState, source: jax.Array, active: jax.Array):
        return jax.lax.scan(lambda s, a: sampled_step(s, source, a), state, active)

    def on_every_device(fn, num_args: int):
        """``fn`` run on every device of the mesh; inputs are copied to each device, results read from one."""
        replicated = NamedSharding(mesh, PartitionSpec())
        mapped = jax.shard_map(fn, mesh=mesh, in_specs=(PartitionSpec(),) * num_args, out_specs=PartitionSpec())
        compiled = jax.jit(mapped, in_shardings=replicated, out_shardings=replicated)
        return lambda *args: _first_device_copy(compiled(*args))

    def inspect(params: hk.Params, eval_source: jax.Array, probe_inputs: jax.Array, probe_positions: jax.Array):
        """Held-out loss/accuracy, and the probe's attention and predictions: one compiled program,
        because on this CPU each distinct program costs seconds to compile and microseconds to run."""
        batches = sample_batches(
            spec, eval_source, jax.random.PRNGKey(10_000 + train_config.seed), train_config.eval_batches
        )

        def one(batch: Batch):
            logits = batch_logits(model, params, None, batch, spec.causal, is_training=False)  # [B, P, V]
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
        step=on_every_device(lambda state, source: sampled_step(state, source, jnp.bool_(True)), 2),
        chunk=on_every_device(chunk, 3),
        inspect=jax.jit(inspect),
    )
