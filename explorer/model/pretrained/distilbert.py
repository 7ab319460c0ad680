"""DistilBERT (``model_type: distilbert``): a 6-layer BERT with its own names, no token types, and a
masked-LM head of three modules.

Its config speaks its own dialect (``dim``, ``n_heads``, ``n_layers``, ``hidden_dim``, ``activation``); every
layer norm has epsilon 1e-12; with ``sinusoidal_pos_embds`` the position table holds sinusoids, saved as a
weight like any other, so it loads as a learned table. ``DistilBertForMaskedLM`` adds ``vocab_transform``
(dense), the activation, ``vocab_layer_norm`` and ``vocab_projector`` (tied to the word embeddings, with a
bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.output_head import TOKEN_TABLE
from explorer.model.pretrained.adapter import (
    Adapter,
    Names,
    activation,
    build_config,
    layer_names,
    norm,
    read,
    require,
    tied_decoder,
)
from explorer.model.pretrained.bert import common_ignored, head_names

LAYER_MODULES = {
    "attention/query": "attention.q_lin",
    "attention/key": "attention.k_lin",
    "attention/value": "attention.v_lin",
    "attention/output": "attention.out_lin",
    "attention_norm": "sa_layer_norm",
    "ffn/expand": "ffn.lin1",
    "ffn/contract": "ffn.lin2",
    "ffn_norm": "output_layer_norm",
}
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
LAYER_NORM_EPS = 1e-12  # fixed in DistilBERT's code, not in its config


def _config(hf: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> ModelConfig:
    require(hf, "model_type", ("distilbert",))
    kind = "DistilBERT"
    head = "vocab_transform.weight" in tensors
    act = activation(hf, "activation")
    return build_config(
        hf,
        kind,
        vocab_size=read(hf, "vocab_size", kind),
        d_model=read(hf, "dim", kind),
        num_heads=read(hf, "n_heads", kind),
        num_layers=read(hf, "n_layers", kind),
        ffn_size=read(hf, "hidden_dim", kind),
        max_len=read(hf, "max_position_embeddings", kind),
        positional="learned",
        layer_norm="post",
        dropout=0.0,
        scale_embeddings=False,
        token_types=0,
        embedding_norm=True,
        layer_norm_eps=LAYER_NORM_EPS,
        activation=act,
        output_head=head,
        head_transform=head,
        head_activation=act,  # DistilBertForMaskedLM applies config.activation
        tie_embeddings=tied_decoder(hf, tensors, "vocab_projector.weight", WORD_EMBEDDINGS),
    )


def _names(config: ModelConfig, tensors: Mapping[str, np.ndarray]) -> Names:
    names: Names = {
        TOKEN_TABLE: WORD_EMBEDDINGS,
        ("encoder", "positional_embedding"): "embeddings.position_embeddings.weight",
        **norm("encoder/embedding_norm", "embeddings.LayerNorm"),
    }
    names.update(layer_names(config, "transformer.layer.{i}", LAYER_MODULES))
    names.update(head_names(config, "vocab_transform", "vocab_layer_norm", "vocab_projector", "vocab_projector.bias"))
    return names


def _ignored(name: str, config: ModelConfig) -> str | None:
    if config.head_transform and config.tie_embeddings and name == "vocab_projector.weight":
        return "the word embeddings again: the decoder is tied to them"
    return common_ignored(name)


ADAPTER = Adapter(
    model_type="distilbert",
    prefix="distilbert.",
    config=_config,
    names=_names,
    ignored=_ignored,
    head_prefixes=("vocab_transform.", "vocab_layer_norm.", "vocab_projector.", "pre_classifier.", "classifier."),
    description="DistilBERT (distilbert-base-uncased, ...): WordPiece, no token types; DistilBertForMaskedLM fills masks",
)
