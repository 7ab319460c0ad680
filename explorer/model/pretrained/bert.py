"""BERT (``model_type: bert``; MiniLM is one): its config and tensor names, and the body RoBERTa and ELECTRA
share.

A BERT is 12 (base) or 24 (large) post-LN layers with learned absolute positions, a token-type embedding
and a layer norm on the embedding sum; ``BertForMaskedLM`` (and ``BertForPreTraining``) add a masked-LM head,
``cls.predictions``: a dense layer, the feed-forward's activation and a layer norm, then a decoder tied to
the word embeddings with a bias of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.output_head import HEAD_NORM, HEAD_TRANSFORM, OUTPUT_HEAD, TIED_BIAS, TOKEN_TABLE
from explorer.model.pretrained.adapter import (
    Adapter,
    Names,
    activation,
    build_config,
    layer_names,
    linear,
    matches,
    norm,
    read,
    require,
    tied_decoder,
)

# Our layer's parts -> BERT's modules inside ``encoder.layer.{i}`` (RoBERTa and ELECTRA use the same).
LAYER_MODULES = {
    "attention/query": "attention.self.query",
    "attention/key": "attention.self.key",
    "attention/value": "attention.self.value",
    "attention/output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn/expand": "intermediate.dense",
    "ffn/contract": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def body_names(config: ModelConfig) -> Names:
    """The embeddings and layers of a BERT-style body (BERT, RoBERTa, ELECTRA), without the prefix."""
    names: Names = {
        TOKEN_TABLE: WORD_EMBEDDINGS,
        ("encoder", "positional_embedding"): "embeddings.position_embeddings.weight",
        ("encoder/token_type_embedding", "embeddings"): "embeddings.token_type_embeddings.weight",
        **norm("encoder/embedding_norm", "embeddings.LayerNorm"),
        **linear("encoder/embeddings_project", "embeddings_project"),  # ELECTRA only (E != D)
    }
    names.update(layer_names(config, "encoder.layer.{i}", LAYER_MODULES))
    return names


def head_names(config: ModelConfig, dense: str, layer_norm: str, decoder: str, bias: str) -> Names:
    """A masked-LM head's names: its transform, and a decoder tied to the word embeddings (only its bias is
    its own) or a Linear of its own."""
    if not config.head_transform:
        return {}
    names = {**linear(HEAD_TRANSFORM, dense), **norm(HEAD_NORM, layer_norm)}
    if config.tie_embeddings:
        names[TIED_BIAS] = bias
    else:
        names.update({(OUTPUT_HEAD, "w"): f"{decoder}.weight", (OUTPUT_HEAD, "b"): bias})
    return names


def body_config(hf: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The ``ModelConfig`` fields of a BERT-style ``config.json`` (BERT, RoBERTa, ELECTRA)."""
    require(hf, "position_embedding_type", ("absolute",), "absolute")
    return dict(
        vocab_size=read(hf, "vocab_size", kind),
        d_model=read(hf, "hidden_size", kind),
        num_heads=read(hf, "num_attention_heads", kind),
        num_layers=read(hf, "num_hidden_layers", kind),
        ffn_size=read(hf, "intermediate_size", kind),
        max_len=read(hf, "max_position_embeddings", kind),
        positional="learned",
        layer_norm="post",
        dropout=0.0,  # inference only: this app does not fine-tune it
        scale_embeddings=False,
        token_types=read(hf, "type_vocab_size", kind),
        embedding_norm=True,
        layer_norm_eps=read(hf, "layer_norm_eps", kind),
        activation=activation(hf, "hidden_act"),
    )


# Tensors of BERT files that our encoder has no place for, and why leaving them out changes nothing.
COMMON_IGNORED = {
    r"embeddings\.position_ids": "an int buffer holding 0..511, the positions; not a weight",
    r"embeddings\.token_type_ids": "an int buffer of zeros, the default segment; not a weight",
    r"pooler\.dense\.(weight|bias)": "the [CLS] pooler, read only by a sentence-pair classifier",
    r"(classifier|pre_classifier|qa_outputs)\.(\w+\.)?(weight|bias)": "a fine-tuning task's head (classification "
    "or question answering); this app shows the encoder and a masked-LM head",
}


def common_ignored(name: str) -> str | None:
    for pattern, reason in COMMON_IGNORED.items():
        if matches(name, pattern):
            return reason
    return None


def _config(hf: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> ModelConfig:
    require(hf, "model_type", ("bert",))
    fields = body_config(hf, "BERT")
    head = "cls.predictions.transform.dense.weight" in tensors
    return build_config(
        hf,
        "BERT",
        **fields,
        output_head=head,
        head_transform=head,
        head_activation=fields["activation"],  # BertPredictionHeadTransform uses hidden_act
        tie_embeddings=tied_decoder(hf, tensors, "cls.predictions.decoder.weight", WORD_EMBEDDINGS),
    )


def _names(config: ModelConfig, tensors: Mapping[str, np.ndarray]) -> Names:
    # transformers ties cls.predictions.decoder.bias to cls.predictions.bias; the decoder's is the one its
    # forward reads, so it wins when a file holds both.
    bias = "cls.predictions.decoder.bias" if "cls.predictions.decoder.bias" in tensors else "cls.predictions.bias"
    head = head_names(
        config,
        "cls.predictions.transform.dense",
        "cls.predictions.transform.LayerNorm",
        "cls.predictions.decoder",
        bias,
    )
    return {**body_names(config), **head}


def _ignored(name: str, config: ModelConfig) -> str | None:
    if matches(name, r"cls\.seq_relationship\.(weight|bias)"):
        return "the next-sentence-prediction head of BERT's pre-training; not a masked-LM head"
    if config.head_transform and matches(name, r"cls\.predictions\.(decoder\.)?bias"):
        return "the masked-LM bias under its second name (transformers ties the two; the decoder's is read)"
    if config.head_transform and config.tie_embeddings and name == "cls.predictions.decoder.weight":
        return "the word embeddings again: the decoder is tied to them"
    return common_ignored(name)


ADAPTER = Adapter(
    model_type="bert",
    prefix="bert.",
    config=_config,
    names=_names,
    ignored=_ignored,
    head_prefixes=("cls.",),
    description="BERT (bert-base-uncased, bert-large-cased, MiniLM, ...): WordPiece; BertForMaskedLM fills masks",
)
