"""Checkpoints: exact round trip of a trained bundle, atomic writes, and a clear CheckpointError for
corrupt, foreign, oversized or inconsistent files."""

from __future__ import annotations

import io
import json
import zipfile

import jax
import numpy as np
import pytest
import safetensors.numpy

from explorer.model import checkpoint
from explorer.model.bundle import ModelBundle
from explorer.model.checkpoint import CheckpointError
from explorer.model.config import ModelConfig
from explorer.text.texts import vocab_for
from explorer.training.step import init_params_shapes

CONFIG = ModelConfig(vocab_size=300, d_model=16, num_heads=2, num_layers=1, ffn_size=32, max_len=32, layer_norm="pre")


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    # Random (not init-like) values in every parameter, so an exact comparison means something.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32), init_params_shapes(CONFIG))
    vocab = vocab_for("grammar", CONFIG.vocab_size)
    return ModelBundle(CONFIG, jax.device_put(params), vocab, "test", task="reverse", info={"steps": 7})


def _meta(data: bytes) -> dict:
    """Our metadata, read from a .safetensors file's header with nothing but json (not the code under test)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8 : 8 + size])["__metadata__"]["explorer"])


def _rewrite(data: bytes, change, as_npz: bool = False) -> bytes:
    """Re-saves a checkpoint after ``change(arrays, meta)`` edits it in place: as .safetensors, or in the
    .npz layout of older versions (which must still load, and load safely)."""
    arrays, meta = dict(safetensors.numpy.load(data)), _meta(data)
    change(arrays, meta)
    if not as_npz:
        return safetensors.numpy.save(arrays, metadata={"explorer": json.dumps(meta)})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_round_trip_is_exact(bundle, tmp_path):
    path = checkpoint.save(bundle, tmp_path / "model.npz")
    loaded = checkpoint.load(path)
    assert loaded.config == bundle.config
    assert loaded.vocab == bundle.vocab
    assert loaded.task == "reverse" and loaded.info == {"steps": 7}
    for (path_a, a), (path_b, b) in zip(
        jax.tree_util.tree_leaves_with_path(bundle.params),
        jax.tree_util.tree_leaves_with_path(loaded.params),
        strict=True,
    ):
        assert path_a == path_b
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(loaded.params))  # on device
    # Bytes round trip too (download/upload), and the same bundle gives the same bytes.
    assert checkpoint.to_bytes(checkpoint.from_bytes(checkpoint.to_bytes(bundle))) == checkpoint.to_bytes(bundle)


def test_save_is_atomic_and_overwrites(bundle, tmp_path):
    path = tmp_path / "sub" / "model.npz"
    checkpoint.save(bundle, path)
    checkpoint.save(bundle, path)  # replacing an existing file
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.npz"]  # no temporary left behind


def test_pickle_is_never_loaded(bundle):
    def add_object(arrays, meta):
        arrays["params/encoder/evil"] = np.array([object()], dtype=object)

    data = _rewrite(checkpoint.to_bytes(bundle), add_object, as_npz=True)  # safetensors cannot hold objects
    with pytest.raises(CheckpointError, match="damaged|not match"):
        checkpoint.from_bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a checkpoint"),
        (b"hello, I am a text file", "not a checkpoint"),
        (b"PK\x03\x04 truncated zip", "damaged"),
    ],
)
def test_garbage_is_rejected(data, message):
    with pytest.raises(CheckpointError, match=message):
        checkpoint.from_bytes(data)


def test_truncated_checkpoint_is_rejected(bundle):
    data = checkpoint.to_bytes(bundle)
    with pytest.raises(CheckpointError, match="damaged"):
        checkpoint.from_bytes(data[: len(data) // 2])


def test_foreign_npz_is_rejected():
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not saved by this app"):
        checkpoint.from_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(b'{"format": "someone-else"}', np.uint8))
    with pytest.raises(CheckpointError, match="format marker"):
        checkpoint.from_bytes(buffer.getvalue())


def test_other_zip_is_rejected():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not numpy")
    with pytest.raises(CheckpointError):
        checkpoint.from_bytes(buffer.getvalue())


def test_oversized_file_is_rejected(bundle, tmp_path, monkeypatch):
    data = checkpoint.to_bytes(bundle)
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", len(data) - 1)
    with pytest.raises(CheckpointError, match="at most"):
        checkpoint.from_bytes(data)
    path = tmp_path / "big.npz"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="at most"):
        checkpoint.load(path)


def test_zip_bomb_is_rejected_before_inflating(bundle, monkeypatch):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.zeros(10_000_000, np.uint8))  # 10 MB of zeros compress to ~10 KB
    data = buffer.getvalue()
    assert len(data) < 100_000
    monkeypatch.setattr(checkpoint, "MAX_CHECKPOINT_BYTES", 1_000_000)
    with pytest.raises(CheckpointError, match="too large"):
        checkpoint.from_bytes(data)


def test_shape_mismatch_is_rejected(bundle):
    def shrink(arrays, meta):
        arrays["params/encoder/token_embedding/embeddings"] = arrays["params/encoder/token_embedding/embeddings"][:-1]

    with pytest.raises(CheckpointError, match="shape"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), shrink))


def test_config_mismatch_is_rejected(bundle):
    def wider(arrays, meta):
        meta["config"]["d_model"] = 32

    with pytest.raises(CheckpointError, match="shape|do not match"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), wider))

    def unknown_field(arrays, meta):
        meta["config"]["mystery"] = 1

    with pytest.raises(CheckpointError, match="settings are invalid"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), unknown_field))

    def vocab_mismatch(arrays, meta):
        meta["vocab"]["tiktoken_ids"] = meta["vocab"]["tiktoken_ids"][:-1]

    with pytest.raises(CheckpointError, match="vocabulary"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), vocab_mismatch))


def test_non_finite_parameters_are_rejected(bundle):
    def poison(arrays, meta):
        name = "params/encoder/token_embedding/embeddings"
        arrays[name] = np.full_like(arrays[name], np.nan)

    with pytest.raises(CheckpointError, match="NaN"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), poison))


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="Cannot read"):
        checkpoint.load(tmp_path / "nope.npz")


def test_meta_of_saved_file_carries_config_and_vocab(bundle):
    meta = _meta(checkpoint.to_bytes(bundle))
    assert meta["config"] == CONFIG.to_dict()
    assert len(meta["vocab"]["tiktoken_ids"]) + 3 == CONFIG.vocab_size


def test_an_older_npz_checkpoint_still_loads_exactly(bundle):
    legacy = _rewrite(checkpoint.to_bytes(bundle), lambda arrays, meta: None, as_npz=True)
    assert legacy.startswith(b"PK")
    loaded = checkpoint.from_bytes(legacy)
    assert loaded.config == bundle.config and loaded.vocab == bundle.vocab and loaded.info == {"steps": 7}
    for a, b in zip(jax.tree.leaves(bundle.params), jax.tree.leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # ... and saving it again writes the current format
    assert not checkpoint.to_bytes(loaded).startswith(b"PK") and checkpoint.to_bytes(loaded) == checkpoint.to_bytes(
        bundle
    )


def test_foreign_or_malformed_safetensors_are_rejected(bundle):
    foreign = safetensors.numpy.save({"weight": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointError, match="no explorer metadata"):
        checkpoint.from_bytes(foreign)
    huge_header = (10**12).to_bytes(8, "little") + b"{}"
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        checkpoint.from_bytes(huge_header)

    def integers(arrays, meta):
        name = "params/encoder/token_embedding/embeddings"
        arrays[name] = arrays[name].astype(np.int32)

    with pytest.raises(CheckpointError, match="not floating-point"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), integers))

    def bad_json(arrays, meta):
        meta.clear()

    with pytest.raises(CheckpointError, match="format marker"):
        checkpoint.from_bytes(_rewrite(checkpoint.to_bytes(bundle), bad_json))
