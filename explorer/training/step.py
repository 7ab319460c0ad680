"""One training step: the state it carries, the optimizer, the loss, and the pure step function.

Glossary of shapes:
  B: batch size, T: sequence length, V: vocabulary size
  P: every parameter in one flat vector (``ParamLayout``); P' scored positions per row in a batch
  G: parameter groups (embedding, each layer, output head)

Blow-ups: a step whose loss, gradient or new parameters are not finite is not applied; the state is
flagged ``diverged`` and every later step is a no-op, so the parameters kept are the last finite ones.

The learning-rate schedule (warm-up, then cosine decay) reads its numbers from the optimizer state
(``optax.inject_hyperparams``), not from the compiled program: a live change of the learning rate, a new
seed or a longer run reuse the programs already compiled.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from explorer.model.attention import take_positions
from explorer.model.config import ModelConfig
from explorer.model.encoder import build_model, init_params
from explorer.model.output_head import output_logits
from explorer.training.config import TrainConfig
from explorer.training.tasks import Batch


class TrainState(NamedTuple):
    flat_params: jax.Array  # [P] every parameter in one vector (see ParamLayout)
    opt_state: optax.OptState  # its hyperparams hold the learning-rate schedule's numbers
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


def learning_rate_at(count, learning_rate, warmup_steps, decay_steps, end_fraction) -> jax.Array:
    """The learning rate after ``count`` steps: a linear warm-up from 0 to ``learning_rate``, then cosine
    decay to ``end_fraction`` of it at ``decay_steps`` (optax's ``warmup_cosine_decay_schedule``, written
    out so that every number can live in the optimizer state instead of the compiled program)."""
    count = jnp.asarray(count, jnp.float32)
    warming = learning_rate * count / jnp.maximum(warmup_steps, 1.0)
    progress = jnp.clip((count - warmup_steps) / jnp.maximum(decay_steps - warmup_steps, 1.0), 0.0, 1.0)
    cosine = learning_rate * (end_fraction + (1.0 - end_fraction) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))
    return jnp.where(count < warmup_steps, warming, cosine)


def _decoupled_weight_decay(rate: float, mask: np.ndarray) -> optax.GradientTransformation:
    """AdamW's decay term ``rate * mask * params`` for a flat parameter vector."""

    def update(updates, state, params):
        return updates + rate * mask * params, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config: TrainConfig, layout: ParamLayout) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW on a warm-up + cosine-decay schedule (no decay on norms/biases).

    The schedule's numbers (``TrainConfig.schedule``) are hyperparameters in the optimizer state
    (``set_learning_rate`` changes the peak of a running training).
    """

    def adamw(learning_rate, warmup_steps, decay_steps, end_fraction):
        schedule = functools.partial(
            learning_rate_at,
            learning_rate=learning_rate,
            warmup_steps=warmup_steps,
            decay_steps=decay_steps,
            end_fraction=end_fraction,
        )
        return optax.chain(
            optax.clip_by_global_norm(config.clip_norm),
            optax.scale_by_adam(),
            _decoupled_weight_decay(config.weight_decay, layout.decay_mask),
            optax.scale_by_learning_rate(schedule),
        )

    return optax.inject_hyperparams(adamw)(**config.schedule)


def schedule_of(state: TrainState) -> dict[str, jax.Array]:
    """The learning-rate schedule's numbers a state trains with (``TrainConfig.schedule``'s keys)."""
    return state.opt_state.hyperparams


def current_learning_rate(state: TrainState) -> jax.Array:
    """The learning rate the next step of ``state`` applies."""
    return learning_rate_at(state.step, **schedule_of(state))


def set_learning_rate(state: TrainState, learning_rate: float) -> TrainState:
    """``state`` with a new peak learning rate from its next step on (same shapes: nothing recompiles)."""
    old = state.opt_state.hyperparams["learning_rate"]
    new = jax.device_put(jnp.asarray(learning_rate, old.dtype), old.sharding)  # where the state lives
    hyperparams = {**state.opt_state.hyperparams, "learning_rate": new}
    return state._replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


def init_state(model_config: ModelConfig, train_config: TrainConfig, params: hk.Params | None = None) -> TrainState:
    """Fresh parameters (or the given ones) and optimizer state, seeded by ``train_config.seed``."""
    build = _state_builder(model_config, train_config.program_key())
    schedule = {k: jnp.float32(v) for k, v in train_config.schedule.items()}
    seed = jnp.int32(train_config.seed)
    return build(None if params is None else jax.device_put(params), seed, schedule)


@functools.lru_cache(maxsize=8)
def _state_builder(model_config: ModelConfig, program_key: TrainConfig):
    """A compiled ``(params | None, seed, schedule) -> TrainState`` (cached: a reset or a new seed does not
    compile again)."""
    layout = param_layout(model_config)

    @jax.jit
    def build(params, seed, schedule):
        if params is None:
            params = init_params(model_config, seed)  # the seed is traced: a new seed compiles nothing
        flat = layout.flatten(params)
        # The schedule's numbers are inputs here, not the program key's placeholders.
        opt_state = make_optimizer(program_key, layout).init(flat)
        opt_state = opt_state._replace(hyperparams={k: schedule[k] for k in opt_state.hyperparams})
        return TrainState(
            flat_params=flat,
            opt_state=opt_state,
            rng=jax.random.PRNGKey(seed + 1),  # +1: batches must not reuse the init key
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
    """Logits at the scored positions only: ``[B, T, D]`` hidden, ``[B, P']`` positions -> ``[B, P', V]``."""
    return output_logits(params, take_positions(final_hidden, positions))


def batch_logits(model: hk.Transformed, params: hk.Params, rng, batch: Batch, causal: bool, is_training: bool):
    """Logits at a batch's scored positions, ``[B, P', V]``, for the loss.

    When only some positions are scored (mlm: P' = 15% of T), the encoder's ``predict_at`` computes the
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
        )  # [B, P', D]
        return output_logits(params, hidden)
    output = model.apply(params, rng, batch.inputs, batch.input_mask, causal=causal, is_training=is_training)
    return scored_logits(params, output.final_hidden, batch.positions)


def weighted_loss(
    logits: jax.Array,  # [B, P', V]
    targets: jax.Array,  # [B, P']
    weights: jax.Array,  # [B, P']
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sums of cross-entropy and of correct predictions over weighted positions, and the weight total."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # [B, P']
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)  # [B, P']
    return jnp.sum(losses * weights), jnp.sum(correct * weights), jnp.sum(weights)


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
        logits = batch_logits(model, params, rng, batch, causal, is_training=True)  # [B, P', V]
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
            "learning_rate": current_learning_rate(state),  # the rate this step applied
            "group_grad_norms": layout.group_norms(grads),  # [G]
            "group_update_ratios": layout.group_norms(updates) / jnp.maximum(weight_norms, 1e-12),  # [G]
            "applied": apply,
            "step": new_state.step,
        }
        return new_state, metrics

    return step


def skipped_metrics(state: TrainState, num_groups: int) -> dict:
    """The metrics of a step that did not run (as ``make_step_fn``'s, with ``applied`` False)."""
    zero = jnp.float32(0.0)
    return {
        "loss": zero,
        "accuracy": zero,
        "grad_norm": zero,
        "learning_rate": zero,
        "group_grad_norms": jnp.zeros(num_groups, jnp.float32),
        "group_update_ratios": jnp.zeros(num_groups, jnp.float32),
        "applied": jnp.bool_(False),
        "step": state.step,
    }
