"""What an architecture's adapter is, and the one checked mapping of a weights file onto our parameters.

An ``Adapter`` says, for one Hugging Face ``model_type``, how its ``config.json`` becomes our ``ModelConfig``
and which of its tensors fills each of our parameters. Everything else is shared: tensor names are read
with or without the model's prefix (``bert.`` in a ``BertForMaskedLM`` file, none in a ``BertModel`` file;
heads are never prefixed), the whole tree is checked against our model's own shapes (``jax.eval_shape`` of
its init), and a file that lacks a tensor, has one we do not know, or has one of the wrong shape is refused
with the names involved, never loaded half-way. Tensors we do not need are listed with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import haiku as hk
import jax
import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.encoder import init_params

# Hugging Face's activation names -> ours (ModelConfig.ACTIVATIONS). "gelu" is the exact erf form, as ours.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
# Our parameter leaf -> the name torch gives it; a torch Linear stores its weight [out, in], hk.Linear [in, out].
LEAF_NAMES = {"w": "weight", "b": "bias", "scale": "weight", "offset": "bias", "embeddings": "weight"}
TRANSPOSED = "w"
# transformers renames these on load (its "legacy" conversion): checkpoints of 2018 name a layer norm's
# scale and offset as TensorFlow did.
LEGACY_NAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))


class WeightMappingError(ValueError):
    """A weights file does not fit our model; the message names the tensors involved."""


class UnsupportedModel(ValueError):
    """A model this app cannot run (architecture, option, or file format); the message says which and why."""


Names = dict[tuple[str, str], str]  # our (module, leaf) -> the tensor's name, without the model's prefix


@dataclass(frozen=True)
class Adapter:
    """One architecture of the registry (``explorer.model.pretrained.registry``).

    Attributes:
      model_type: ``config.json``'s ``model_type``.
      prefix: the body's prefix in ``*ForMaskedLM`` files (``"bert."``).
      config: ``(config.json, tensors) -> ModelConfig``; the tensors (names without the prefix) tell a
        checkpoint with a masked-LM head from one without, and a tied decoder from an untied one.
      names: ``(ModelConfig, tensors) -> {(module, leaf): tensor name}`` for every parameter of our model (the
        tensors decide between a file's aliases of one tensor).
      ignored: ``(tensor name, ModelConfig) -> reason or None``: tensors we read past, and why that
        changes nothing.
      head_prefixes: names that belong to a task head (never prefixed in a file).
      description: one line for the README and the refusal of an unsupported ``model_type``.
    """

    model_type: str
    prefix: str
    config: Callable[[Mapping[str, Any], Mapping[str, np.ndarray]], ModelConfig]
    names: Callable[[ModelConfig, Mapping[str, np.ndarray]], Names]
    ignored: Callable[[str, ModelConfig], str | None]
    head_prefixes: tuple[str, ...]
    description: str


def require(hf: Mapping[str, Any], key: str, allowed: tuple, default: Any = None) -> Any:
    """``hf[key]`` if it is one of ``allowed``, else an ``UnsupportedModel`` that says what we run."""
    value = hf.get(key, default)
    if value not in allowed:
        raise UnsupportedModel(f"config.json has {key}={value!r}; this encoder runs only {key} in {allowed}.")
    return value


def activation(hf: Mapping[str, Any], key: str) -> str:
    return ACTIVATIONS[require(hf, key, tuple(ACTIVATIONS), "gelu")]


def build_config(hf: Mapping[str, Any], kind: str, **fields: Any) -> ModelConfig:
    """``ModelConfig(**fields)``, with a config.json that lacks a key or holds a value we cannot run refused
    in one sentence (``fields`` are read inside the adapter, so a ``KeyError`` names config.json's key)."""
    try:
        return ModelConfig(**fields)
    except ValueError as error:
        raise UnsupportedModel(f"This {kind} cannot run here: {error}") from error


def read(hf: Mapping[str, Any], key: str, kind: str) -> Any:
    if key not in hf:
        raise UnsupportedModel(f"config.json lacks {key!r}; it is not a {kind} config.")
    return hf[key]


def tied_decoder(hf: Mapping[str, Any], tensors: Mapping[str, np.ndarray], decoder: str, table: str) -> bool:
    """Whether a masked-LM decoder reads the word embeddings, as transformers decides it: tied unless the config
    says ``tie_word_embeddings: false``, or the file holds a decoder weight that differs from the embeddings."""
    if not hf.get("tie_word_embeddings", True):
        return False
    if decoder not in tensors or table not in tensors:
        return True
    own, shared = tensors[decoder], tensors[table]
    return own.shape == shared.shape and bool(np.array_equal(own, shared))


class PrefixedTensors(Mapping):
    """A weights file's tensors by their names without the model's prefix (``bert.``), legacy layer-norm
    names read as today's; ``file_name`` gives a name back as the file spells it, for messages."""

    def __init__(self, tensors: Mapping[str, np.ndarray], adapter: Adapter):
        self._tensors = tensors
        self._adapter = adapter
        self._original: dict[str, str] = {}
        self.prefixed = any(name.startswith(adapter.prefix) for name in tensors)
        for name in tensors:
            short = name
            for old, new in LEGACY_NAMES:
                short = short.replace(old, new)
            if short.startswith(adapter.prefix):
                short = short[len(adapter.prefix) :]
            if short in self._original:
                raise WeightMappingError(
                    f"The weights file holds {self._original[short]} and {name}, the same tensor twice; it is damaged."
                )
            self._original[short] = name

    def __getitem__(self, name: str) -> np.ndarray:
        return self._tensors[self._original[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._original)

    def __len__(self) -> int:
        return len(self._original)

    def file_name(self, name: str) -> str:
        if name in self._original:
            return self._original[name]
        body = not name.startswith(self._adapter.head_prefixes)
        return self._adapter.prefix + name if self.prefixed and body else name


def _problem_list(kind: str, names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{kind}: {', '.join(names[:limit])}{more}"


def map_parameters(
    adapter: Adapter, tensors: Mapping[str, np.ndarray], config: ModelConfig
) -> tuple[hk.Params, dict[str, str]]:
    """Our Haiku parameters for ``config`` from a file's named tensors, and the tensors left out with why.

    Every parameter of our model is filled from exactly one tensor, shapes are checked against
    ``jax.eval_shape`` of our init (after transposing Linear weights), and every tensor of the file is
    either used or ignored with a reason. All problems are reported at once. Tensors are read one at a time
    (``tensors`` may read them from disk lazily) and converted to float32.

    Raises:
      WeightMappingError: tensors missing, unexpected, of the wrong shape, not floating-point or not finite.
    """
    named = tensors if isinstance(tensors, PrefixedTensors) else PrefixedTensors(tensors, adapter)
    names = adapter.names(config, named)
    expected = jax.eval_shape(lambda: init_params(config, 0))  # module -> name -> ShapeDtypeStruct
    problems: dict[str, list[str]] = {"missing": [], "wrong shape": [], "not usable numbers": []}
    params: dict[str, dict[str, np.ndarray]] = {}
    used = set()
    for module, leaves in expected.items():
        for leaf_name, leaf in leaves.items():
            source = names.get((module, leaf_name))
            if source is None:
                problems["missing"].append(
                    f"Our parameter {module}/{leaf_name} has no counterpart in a {adapter.model_type} weights file"
                )
                continue
            used.add(source)
            if source not in named:
                problems["missing"].append(f"{named.file_name(source)} (for {module}/{leaf_name})")
                continue
            value = np.asarray(named[source])
            transposed = leaf_name == TRANSPOSED
            if transposed and value.ndim == 2:
                value = value.T
            if value.shape != tuple(leaf.shape):
                problems["wrong shape"].append(
                    f"{named.file_name(source)} is {list(named[source].shape)}, {module}/{leaf_name} needs "
                    f"{list(leaf.shape)}" + (" (before transposing [out, in])" if transposed else "")
                )
                continue
            if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
                problems["not usable numbers"].append(
                    f"{named.file_name(source)} ({value.dtype}, must be finite floats)"
                )
                continue
            params.setdefault(module, {})[leaf_name] = np.ascontiguousarray(value, np.float32)
    ignored, unexpected = {}, []
    for name in sorted(set(named) - used):
        reason = adapter.ignored(name, config)
        if reason is None:
            unexpected.append(named.file_name(name))
        else:
            ignored[named.file_name(name)] = reason
    found = [_problem_list(kind, found) for kind, found in problems.items() if found]
    if unexpected:
        found.append(_problem_list("unexpected (our encoder has no place for them)", unexpected))
    if found:
        raise WeightMappingError(
            "The weights do not fit the encoder: " + "; ".join(found) + ". Use the weights file that belongs "
            "to this config.json."
        )
    return hk.data_structures.to_haiku_dict(params), ignored


def layer_names(config: ModelConfig, pattern: str, modules: Mapping[str, str]) -> Names:
    """Names of every layer's parameters: ``pattern`` names layer ``{i}`` (``"encoder.layer.{i}"``), inside which
    ``modules[part]`` is the torch module behind our ``encoder/layer_i/part``."""
    names: Names = {}
    leaves = {"attention": ("w", "b"), "ffn": ("w", "b"), "norm": ("scale", "offset")}
    for i in range(config.num_layers):
        for part, module in modules.items():
            kind = "norm" if part.endswith("norm") else part.split("/")[0]
            for leaf in leaves[kind]:
                names[(f"encoder/layer_{i}/{part}", leaf)] = f"{pattern.format(i=i)}.{module}.{LEAF_NAMES[leaf]}"
    return names


def linear(ours: str, theirs: str) -> Names:
    return {(ours, "w"): f"{theirs}.weight", (ours, "b"): f"{theirs}.bias"}


def norm(ours: str, theirs: str) -> Names:
    return {(ours, "scale"): f"{theirs}.weight", (ours, "offset"): f"{theirs}.bias"}


def matches(name: str, *patterns: str) -> bool:
    """Whether ``name`` matches one of some regular expressions (whole name)."""
    return any(re.fullmatch(pattern, name) for pattern in patterns)
