"""The encoder built from named parts computes exactly what the single-function encoder did.

``fixtures/encoder_before_split.json`` was recorded with the encoder as it was before it was split into
parts (``explorer/model.py`` at commit c0202ff): for each configuration below, every parameter's
module, name and shape in creation order (the order of the Model page's table and of checkpoints), and
a sha256 of every parameter from ``init_params(config, seed=3)`` and of every output on one fixed input
(padding, a causal mask with an ablated head, the training shortcut ``predict_at``, and dropout while
training). Equal digests mean bit-identical numbers: old checkpoints, the MiniLM weight mapping and a
seed's initial weights and batches stay exactly what they were.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer.model.config import ModelConfig
from explorer.model.encoder import build_model, init_params
from explorer.model.output_head import OUTPUT_HEAD, TIED_BIAS, output_logits

RECORD = json.loads((Path(__file__).parent / "fixtures" / "encoder_before_split.json").read_text())
BASE = dict(vocab_size=24, d_model=8, num_heads=2, num_layers=2, ffn_size=16, max_len=16)


def fixed_input():
    """The recorded input: two rows of 8 tokens, the second padded after 5."""
    rng = np.random.default_rng(17)
    ids = rng.integers(3, 24, size=(2, 8)).astype(np.int32)
    mask = np.array([[True] * 8, [True] * 5 + [False] * 3])
    positions = np.array([[0, 3, 7], [4, 1, 1]], np.int32)
    head_mask = np.ones((2, 2), np.float32)
    head_mask[1, 0] = 0.0
    return np.where(mask, ids, 0).astype(np.int32), mask, positions, head_mask


def digest(array) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.dtype.str.encode() + str(array.shape).encode() + array.tobytes()).hexdigest()[:20]


def digests_now(config: ModelConfig) -> dict[str, str]:
    ids, mask, positions, head_mask = fixed_input()
    params = init_params(config, seed=3)
    out = {f"param|{m}|{k}": digest(v) for m, leaves in params.items() for k, v in leaves.items()}
    model = build_model(config)
    heads = head_mask[: config.num_layers, : config.num_heads]
    runs = {
        "plain": model.apply(params, None, ids, mask),
        "causal_ablated": model.apply(params, None, ids, mask, head_mask=heads, causal=True),
        "predict_at": model.apply(params, None, ids, mask, causal=jnp.asarray(True), predict_at=positions),
    }
    if config.dropout:
        runs["training"] = model.apply(params, jax.random.PRNGKey(5), ids, mask, is_training=True)
        runs["training_predict_at"] = model.apply(
            params, jax.random.PRNGKey(6), ids, mask, is_training=True, predict_at=positions
        )
    for name, result in runs.items():
        if hasattr(result, "_fields"):
            out.update({f"{name}|{field}": digest(getattr(result, field)) for field in result._fields})
        else:
            out[name] = digest(result)
    return out


def test_the_record_covers_every_variant_of_the_parts():
    configs = [ModelConfig(**{**BASE, **entry["changes"]}) for entry in RECORD.values()]
    assert {c.layer_norm for c in configs} == {"post", "pre"}
    assert {c.positional for c in configs} == {"sinusoidal", "learned", "none"}
    assert {(c.output_head, c.output_head and c.tie_embeddings) for c in configs} == {
        (True, True),
        (True, False),
        (False, False),
    }
    assert any(c.token_types and c.embedding_norm and not c.scale_embeddings for c in configs)
    assert any(c.dropout for c in configs)


@pytest.mark.parametrize("name", list(RECORD))
def test_parameter_names_and_shapes_are_unchanged(name):
    config = ModelConfig(**{**BASE, **RECORD[name]["changes"]})
    params = init_params(config, seed=3)
    now = [f"{m} {k} {tuple(v.shape)}" for m, leaves in params.items() for k, v in leaves.items()]
    assert now == RECORD[name]["params"]


@pytest.mark.parametrize("name", list(RECORD))
def test_parameters_and_outputs_are_bit_identical(name):
    config = ModelConfig(**{**BASE, **RECORD[name]["changes"]})
    recorded, now = RECORD[name]["digests"], digests_now(config)
    assert set(now) == set(recorded)
    changed = sorted(key for key in recorded if now[key] != recorded[key])
    assert not changed, f"{name}: these differ from the encoder before the split: {changed}"


def test_the_names_checkpoints_rely_on():
    """A few names spelled out: parameters of the encoder itself, and those of each part's modules."""
    bert = ModelConfig(**BASE, positional="learned", token_types=2, embedding_norm=True, layer_norm="pre")
    params = init_params(bert)
    assert set(params["encoder"]) == {"positional_embedding", "output_bias"}  # directly on the encoder
    for module in (
        "encoder/token_embedding",
        "encoder/token_type_embedding",
        "encoder/embedding_norm",
        "encoder/layer_0/attention/query",
        "encoder/layer_1/attention/output",
        "encoder/layer_0/attention_norm",
        "encoder/layer_0/ffn/expand",
        "encoder/layer_1/ffn_norm",
        "encoder/final_norm",
    ):
        assert module in params
    untied = init_params(ModelConfig(**BASE, tie_embeddings=False))
    assert set(untied[OUTPUT_HEAD]) == {"w", "b"} and "encoder" not in untied
    assert TIED_BIAS == ("encoder", "output_bias")


@pytest.mark.parametrize("tie", [True, False])
def test_the_head_outside_apply_is_the_head_inside(tie):
    config = ModelConfig(**BASE, tie_embeddings=tie, layer_norm="pre")
    ids, mask, _, _ = fixed_input()
    params = init_params(config, seed=4)
    out = build_model(config).apply(params, None, ids, mask)
    np.testing.assert_allclose(output_logits(params, out.final_hidden), out.logits, atol=1e-6)
