"""A model folder in Hugging Face's layout: which files we read, which we refuse, and the weights' headers.

A folder holds ``config.json``, the weights as ``model.safetensors`` (or ``model.safetensors.index.json`` and
its shards) and a tokenizer (``tokenizer.json``, or ``vocab.txt``, or ``vocab.json`` + ``merges.txt``). Only
safetensors is read: ``pytorch_model.bin`` and the other framework formats are pickles or executable
graphs, which can run code when loaded, so a folder that has only those is refused with how to convert it.
A weights file's header (names, dtypes, shapes) is read first, on its own: it gives the memory a model needs
before any tensor is loaded, and tensors are then read one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.model.pretrained.adapter import UnsupportedModel
from explorer.model.pretrained.registry import adapter_for
from explorer.text.pretrained_vocab import missing_tokenizer_message, tokenizer_files

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
# Weights in formats that can run code when loaded (pickle) or that we do not read.
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")
OTHER_FORMATS = ("tf_model.h5", "flax_model.msgpack")
MAX_JSON_BYTES = 16 * 1024 * 1024  # config.json is ~1 kB, a shard index ~30 kB
MAX_HEADER_BYTES = 64 * 1024 * 1024  # a safetensors header lists tensors: ~100 bytes each
FLOAT_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
CONVERT_HINT = (
    "convert it to model.safetensors first: in Python with transformers, "
    "`AutoModelForMaskedLM.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)`, or the "
    "safetensors project's convert script"
)


class PretrainedUnavailable(RuntimeError):
    """A pretrained model's files are not there (not installed, not a folder, not cached); the message says
    what is missing and how to get it."""


def read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UnsupportedModel(f"{path} is larger than {MAX_JSON_BYTES // 2**20} MB: not a model's JSON file.")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        if isinstance(error, UnsupportedModel):
            raise
        raise UnsupportedModel(f"Cannot read {path} ({error}).") from error


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors' name: "F32", "F16", "BF16", "I64", ...
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Names, dtypes and shapes of a ``.safetensors`` file, from its header alone (no tensor is read)."""
    damaged = f"{path} is not a readable safetensors file"
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or length > min(size - 8, MAX_HEADER_BYTES):
                raise UnsupportedModel(f"{damaged} (its header length is {length} bytes).")
            header = json.loads(handle.read(length).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        if isinstance(error, UnsupportedModel):
            raise
        raise UnsupportedModel(f"{damaged} ({error}).") from error
    if not isinstance(header, dict):
        raise UnsupportedModel(f"{damaged} (its header is not a table of tensors).")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list) or "dtype" not in entry:
            raise UnsupportedModel(f"{damaged} (tensor {name!r} has no dtype and shape).")
        tensors[name] = TensorInfo(str(entry["dtype"]), tuple(int(n) for n in entry["shape"]))
    return tensors


class SafetensorsWeights(Mapping):
    """The tensors of one or more ``.safetensors`` files by name (numpy), each read from disk when asked.

    Reading one tensor at a time keeps a large model's loading at about one copy of its weights (the
    float32 parameters being built) instead of two.
    """

    def __init__(self, files: tuple[Path, ...]):
        self.files = files
        self.info: dict[str, TensorInfo] = {}
        self._where: dict[str, Path] = {}
        for path in files:
            for name, info in read_header(path).items():
                if name in self._where:
                    raise UnsupportedModel(f"The tensor {name} is in both {self._where[name].name} and {path.name}.")
                self.info[name], self._where[name] = info, path
        self._handles: dict[Path, Any] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        from safetensors import safe_open

        path = self._where[name]
        if path not in self._handles:
            try:
                self._handles[path] = safe_open(str(path), framework="numpy")
            except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for every defect
                raise UnsupportedModel(f"{path} is not a readable safetensors file ({error}).") from error
        try:
            return self._handles[path].get_tensor(name)
        except Exception as error:  # noqa: BLE001
            raise UnsupportedModel(f"Cannot read tensor {name} of {path} ({error}).") from error

    def __iter__(self) -> Iterator[str]:
        return iter(self.info)

    def __len__(self) -> int:
        return len(self.info)

    def __contains__(self, name: object) -> bool:
        return name in self.info

    @property
    def parameters(self) -> int:
        """How many floating-point numbers the files hold (int buffers such as position ids not counted)."""
        return sum(info.elements for info in self.info.values() if info.dtype in FLOAT_SIZES)

    @property
    def file_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


@dataclass(frozen=True)
class ModelFolder:
    """A model folder's files, checked: its ``config.json`` (read), weights and tokenizer files."""

    path: Path
    hf_config: dict
    weights: tuple[Path, ...]
    tokenizer: tuple[str, ...]


def weight_files(folder: Path) -> tuple[Path, ...]:
    """The safetensors files of ``folder`` (one, or the shards its index names); a refusal otherwise."""
    if (folder / WEIGHTS_FILE).is_file():
        return (folder / WEIGHTS_FILE,)
    if (folder / WEIGHTS_INDEX).is_file():
        index = read_json(folder / WEIGHTS_INDEX)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise UnsupportedModel(f"{folder / WEIGHTS_INDEX} has no weight_map.")
        shards = []
        for name in dict.fromkeys(weight_map.values()):
            # Shard names come from a file: only plain names inside this folder, never a path elsewhere.
            if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
                raise UnsupportedModel(f"{folder / WEIGHTS_INDEX} names a shard {name!r} outside the folder.")
            if not (folder / name).is_file():
                raise PretrainedUnavailable(f"{folder} lacks the shard {name} that {WEIGHTS_INDEX} names.")
            shards.append(folder / name)
        return tuple(shards)
    present = [name for name in PICKLE_FILES + OTHER_FORMATS if (folder / name).exists()]
    if any(name in PICKLE_FILES for name in present):
        raise UnsupportedModel(
            f"{folder} has only {present[0]}, a pickle, which can run code when it is loaded, so this app never "
            f"opens it: {CONVERT_HINT}."
        )
    if present:
        raise UnsupportedModel(f"{folder} has only {present[0]}; this app reads {WEIGHTS_FILE}: {CONVERT_HINT}.")
    raise PretrainedUnavailable(f"{folder} has no {WEIGHTS_FILE} (nor {WEIGHTS_INDEX} and its shards).")


def open_folder(path: str | Path) -> ModelFolder:
    """Checks a model folder and reads its ``config.json``; raises with one sentence saying what is wrong."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise PretrainedUnavailable(f"{folder} is not a folder.")
    if not (folder / CONFIG_FILE).is_file():
        raise PretrainedUnavailable(f"{folder} has no {CONFIG_FILE}: it is not a Hugging Face model folder.")
    hf_config = read_json(folder / CONFIG_FILE)
    if not isinstance(hf_config, dict):
        raise UnsupportedModel(f"{folder / CONFIG_FILE} is not a model config (a JSON object).")
    adapter_for(hf_config)  # an architecture we do not run is refused before anything else is read
    weights = weight_files(folder)
    tokenizer = tokenizer_files(folder)
    if tokenizer is None:
        raise PretrainedUnavailable(missing_tokenizer_message(folder))
    return ModelFolder(folder.resolve(), hf_config, weights, tokenizer)
