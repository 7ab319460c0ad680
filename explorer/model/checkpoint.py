"""Checkpoints: parameters, config and vocabulary in one ``.safetensors`` file, never a pickle.

Layout: every parameter is a float32 tensor named ``params/<module>/<name>``; the file's string metadata
holds, under ``explorer``, JSON with a format marker, the config, the vocabulary and free-form info (task,
step, metrics). safetensors is the ecosystem's format for tensors that cannot execute code. Checkpoints
saved before it, ``.npz`` files with the same names and a ``meta`` uint8 array of that JSON, still load
(``np.load(allow_pickle=False)``, zip-bomb checked). Everything read is validated against the config
before use, so a foreign, corrupt or hostile file gives a clear ``CheckpointError``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import numpy as np
import safetensors.numpy

from explorer import DEFAULT_CHECKPOINT
from explorer.model.bundle import ModelBundle
from explorer.model.config import ModelConfig
from explorer.model.encoder import build_model
from explorer.text.texts import vocab_for
from explorer.text.vocab import Vocab

FORMAT = "encoder-explorer-checkpoint"
METADATA_KEY = "explorer"  # where a .safetensors checkpoint keeps our JSON metadata
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a header larger than this is not one of ours: refuse before parsing
VERSION = 1
# Far above any toy model (the default is ~1 MB) yet small enough to refuse a file that would fill memory.
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint could not be read; the message says why in words a user can act on."""


def _expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    model = build_model(config)
    ids = jax.ShapeDtypeStruct((1, 2), np.int32)
    mask = jax.ShapeDtypeStruct((1, 2), np.bool_)
    shapes = jax.eval_shape(lambda i, m: model.init(jax.random.PRNGKey(0), i, m), ids, mask)
    return {
        f"params/{module}/{name}": tuple(leaf.shape)
        for module, leaves in shapes.items()
        for name, leaf in leaves.items()
    }


def to_bytes(bundle: ModelBundle, info: dict[str, Any] | None = None) -> bytes:
    """Serialises a model bundle to ``.safetensors`` bytes (for a download button or a file)."""
    arrays = {
        f"params/{module}/{name}": np.asarray(value, np.float32)
        for module, leaves in bundle.params.items()
        for name, value in leaves.items()
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": bundle.config.to_dict(),
        "vocab": bundle.vocab.to_dict(),
        "task": bundle.task,
        "info": info if info is not None else dict(bundle.info),
    }
    return safetensors.numpy.save(arrays, metadata={METADATA_KEY: json.dumps(meta)})


def save(bundle: ModelBundle, path: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    """Writes atomically: a temporary file in the same folder, fsynced, then renamed over ``path``.

    A crash mid-write leaves the previous checkpoint intact, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_bytes(bundle, info)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the permissions any new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read_safetensors(data: bytes) -> tuple[dict[str, np.ndarray], Any]:
    """Tensors and our metadata from ``.safetensors`` bytes (an 8-byte header length, a JSON header, data)."""
    not_ours = "This is not a checkpoint of this app (expected a .safetensors file saved by it)."
    if len(data) < 8:
        raise CheckpointError(not_ours)
    header_size = int.from_bytes(data[:8], "little")
    if header_size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise CheckpointError(not_ours)
    try:
        header = json.loads(data[8 : 8 + header_size].decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(not_ours) from error
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or METADATA_KEY not in metadata:
        raise CheckpointError("This .safetensors file was not saved by this app (it has no explorer metadata).")
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except (TypeError, ValueError) as error:
        raise CheckpointError("The checkpoint's metadata is not valid JSON; the file is damaged.") from error
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for every defect
        raise CheckpointError(f"The checkpoint file is damaged and cannot be read ({error}).") from error
    return arrays, meta


def _read_npz(data: bytes) -> tuple[dict[str, np.ndarray], Any]:
    """Arrays and metadata of a checkpoint saved before safetensors (``.npz``, a ``meta`` JSON array)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # An entry may be compressed: check what it would inflate to before numpy inflates it.
            inflated = sum(entry.file_size for entry in archive.infolist())
        if inflated > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"The checkpoint would unpack to {inflated / 2**20:.0f} MB; that is too large.")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise CheckpointError(f"The checkpoint file is damaged and cannot be read ({error}).") from error
    if "meta" not in arrays:
        raise CheckpointError("This .npz file has no 'meta' entry: it was not saved by this app.")
    try:
        meta = json.loads(arrays.pop("meta").astype(np.uint8).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError("The checkpoint's metadata is not valid JSON; the file is damaged.") from error
    return arrays, meta


def from_bytes(data: bytes, source: str = "uploaded checkpoint") -> ModelBundle:
    """Reads and validates a checkpoint; raises ``CheckpointError`` with a clear reason."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"The file is {len(data) / 2**20:.0f} MB; checkpoints of this app are at most "
            f"{MAX_CHECKPOINT_BYTES // 2**20} MB."
        )
    arrays, meta = _read_npz(data) if data.startswith(b"PK") else _read_safetensors(data)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("This file was not saved by this app (its format marker is missing).")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"Checkpoint format version {meta.get('version')!r} is not supported (expected {VERSION})."
        )
    try:
        config = ModelConfig.from_dict(meta.get("config"))
        vocab = Vocab.from_dict(meta.get("vocab"))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"The checkpoint's settings are invalid: {error}") from error
    if vocab.size != config.vocab_size:
        raise CheckpointError(
            f"The checkpoint's vocabulary has {vocab.size} entries but its model expects {config.vocab_size}."
        )
    expected = _expected_shapes(config)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"The checkpoint's parameters do not match its config (missing {missing[:3]}, unexpected {extra[:3]})."
        )
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, shape in expected.items():
        value = arrays[key]
        if value.shape != shape:
            raise CheckpointError(f"Parameter {key[7:]} has shape {value.shape}, the config needs {shape}.")
        if value.dtype.kind != "f":
            raise CheckpointError(f"Parameter {key[7:]} holds {value.dtype}, not floating-point numbers.")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"Parameter {key[7:]} contains NaN or infinite values.")
        module, name = key[len("params/") :].rsplit("/", 1)
        params.setdefault(module, {})[name] = value.astype(np.float32)
    info = meta.get("info") if isinstance(meta.get("info"), dict) else {}
    task = meta.get("task") if isinstance(meta.get("task"), str) else None
    return ModelBundle(
        config=config,
        params=jax.device_put(hk.data_structures.to_haiku_dict(params)),
        vocab=vocab,
        source=source,
        task=task,
        info=info,
    )


def load(path: str | os.PathLike) -> ModelBundle:
    """Reads a checkpoint file; raises ``CheckpointError`` (never a traceback-worthy surprise)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(
                f"{path.name} is {size / 2**20:.0f} MB; checkpoints are at most {MAX_CHECKPOINT_BYTES // 2**20} MB."
            )
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"Cannot read {path}: {error.strerror or error}.") from error
    return from_bytes(data, source=f"checkpoint {path.name}")


def load_default(path: str | os.PathLike | None = None) -> tuple[ModelBundle, str | None]:
    """The shipped checkpoint, or a random model labelled as such with a sentence saying why.

    Returns ``(bundle, notice)``; ``notice`` is None when the checkpoint loaded.
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    try:
        return load(path), None
    except CheckpointError as error:
        config = ModelConfig()
        bundle = ModelBundle.random(config, vocab_for("grammar", config.vocab_size))
        return bundle, f"The default checkpoint could not be loaded ({error}); showing an untrained model."
