"""The task batch makers and the ideal attention patterns of the toy tasks."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from explorer.text.texts import GRAMMAR_VOCAB_SIZE, named_text, token_streams, vocab_for
from explorer.text.vocab import MASK
from explorer.training.tasks import (
    TASKS,
    TaskSpec,
    attention_closeness,
    check_stream,
    ideal_attention,
    sample_batch,
    sample_batches,
    toy_source,
)

# Jitted, because op-by-op dispatch of a sampler compiles every primitive separately (seconds each).
sample_batch = jax.jit(sample_batch, static_argnums=0)
sample_batches = jax.jit(sample_batches, static_argnums=(0, 3))


@pytest.fixture(scope="module")
def vocab():
    return vocab_for("grammar", GRAMMAR_VOCAB_SIZE)


@pytest.fixture(scope="module")
def stream(vocab):
    return token_streams(named_text("grammar"), vocab)[0]


def test_short_text_is_rejected_with_what_is_needed():
    check_stream(np.arange(65), 64, "training part")
    with pytest.raises(ValueError, match="at least 65"):
        check_stream(np.arange(50), 64, "training part")


@pytest.mark.parametrize("task", TASKS)
def test_batches_have_consistent_shapes(task, vocab, stream):
    spec = TaskSpec(task=task, batch_size=4, seq_len=12, num_symbols=8)
    source = stream if spec.is_text else toy_source(vocab, 8)
    batch = jax.device_get(sample_batches(spec, source, jax.random.PRNGKey(0), 3))
    predictions = spec.num_predictions
    assert batch.inputs.shape == batch.input_mask.shape == (3, 4, 12)
    assert batch.positions.shape == batch.targets.shape == batch.weights.shape == (3, 4, predictions)
    assert batch.inputs.dtype == np.int32 and batch.targets.dtype == np.int32
    assert batch.inputs.min() >= 0 and batch.inputs.max() < vocab.size
    assert np.all((batch.positions >= 0) & (batch.positions < 12))


def _toy(task, vocab, **kw):
    spec = TaskSpec(task=task, batch_size=8, seq_len=10, num_symbols=12, **kw)
    return spec, jax.device_get(sample_batch(spec, toy_source(vocab, 12), jax.random.PRNGKey(3)))


def test_reverse_sort_copy_targets(vocab):
    spec, batch = _toy("reverse", vocab)
    np.testing.assert_array_equal(batch.targets, batch.inputs[:, ::-1])
    spec, batch = _toy("sort", vocab)
    np.testing.assert_array_equal(batch.targets, np.sort(batch.inputs, axis=1))
    spec, batch = _toy("copy", vocab, copy_offset=3)
    np.testing.assert_array_equal(batch.targets[:, 3:], batch.inputs[:, :-3])
    assert np.all(np.isin(batch.inputs, toy_source(vocab, 12)))


def test_mlm_masks_distinct_positions_and_targets_the_original(vocab, stream):
    spec = TaskSpec(task="mlm", batch_size=64, seq_len=40)
    batch = jax.device_get(sample_batch(spec, stream, jax.random.PRNGKey(1)))
    assert spec.num_predictions == 6
    for row in range(64):
        assert len(set(batch.positions[row].tolist())) == spec.num_predictions
    masked = np.take_along_axis(batch.inputs, batch.positions, axis=1)
    share_masked = np.mean(masked == MASK)
    assert 0.7 < share_masked < 0.9  # BERT's 80% [MASK]
    unmasked_elsewhere = batch.inputs.copy()
    np.put_along_axis(unmasked_elsewhere, batch.positions, -1, axis=1)
    assert not np.any(unmasked_elsewhere == MASK)  # [MASK] appears only at scored positions


def test_causal_targets_are_the_next_token(stream):
    spec = TaskSpec(task="causal", batch_size=4, seq_len=16)
    batch = jax.device_get(sample_batch(spec, stream, jax.random.PRNGKey(2)))
    np.testing.assert_array_equal(batch.targets[:, :-1], batch.inputs[:, 1:])
    assert spec.causal


@pytest.mark.parametrize("task", ["reverse", "sort", "copy"])
def test_ideal_attention_rows_sum_to_one_and_score_perfectly(task, vocab):
    spec, batch = _toy(task, vocab)
    ideal = ideal_attention(spec, batch.inputs)  # [B, T, T]
    np.testing.assert_allclose(ideal.sum(-1), 1.0, rtol=1e-6)
    # Attending exactly as the ideal scores 1; attending uniformly scores about 1/T.
    perfect = np.broadcast_to(ideal[None, :, None], (2, 8, 3, 10, 10))
    np.testing.assert_allclose(attention_closeness(perfect, ideal), 1.0, rtol=1e-6)
    uniform = np.full((2, 8, 3, 10, 10), 0.1, np.float32)
    scores = attention_closeness(uniform, ideal)
    assert scores.shape == (2, 3)
    if task != "sort":
        np.testing.assert_allclose(scores, 0.1, rtol=1e-5)
    # The ideal pattern produces the targets: its argmax points at the needed input symbol.
    picked = np.take_along_axis(batch.inputs, ideal.argmax(-1), axis=1)
    np.testing.assert_array_equal(picked, batch.targets)


def test_reverse_ideal_is_the_anti_diagonal(vocab):
    spec, batch = _toy("reverse", vocab)
    np.testing.assert_array_equal(ideal_attention(spec, batch.inputs)[0], np.eye(10)[::-1])


def test_mismatched_shapes_are_an_explicit_error(vocab):
    spec, batch = _toy("reverse", vocab)
    with pytest.raises(ValueError, match="same batch"):
        attention_closeness(np.zeros((1, 8, 2, 9, 9)), ideal_attention(spec, batch.inputs))
    with pytest.raises(ValueError, match="toy tasks"):
        ideal_attention(TaskSpec(task="mlm"), batch.inputs)


def test_task_spec_validates():
    with pytest.raises(ValueError, match="Unknown task"):
        TaskSpec(task="translate")
    with pytest.raises(ValueError, match="copy_offset"):
        TaskSpec(task="copy", seq_len=4, copy_offset=4)
