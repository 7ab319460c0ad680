"""RoBERTa (``model_type: roberta``): BERT's body, positions numbered from ``padding_idx + 1``, one token type,
a byte-level BPE vocabulary, and its own masked-LM head, ``lm_head``.

RoBERTa's position ids start at ``pad_token_id + 1`` (= 2), so its table has 514 rows for 512 tokens and a
text's positions are rows 2, 3, …: ``ModelConfig.position_offset``. Its ``lm_head`` is a dense layer, exact
GELU whatever ``hidden_act`` says, a layer norm, and a decoder tied to the word embeddings with a bias.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.pretrained.adapter import (
    Adapter,
    Names,
    UnsupportedModel,
    build_config,
    matches,
    require,
    tied_decoder,
)
from explorer.model.pretrained.bert import WORD_EMBEDDINGS, body_config, body_names, common_ignored, head_names


def _config(hf: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> ModelConfig:
    require(hf, "model_type", ("roberta",))
    fields = body_config(hf, "RoBERTa")
    pad = hf.get("pad_token_id", 1)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise UnsupportedModel(f"config.json has pad_token_id={pad!r}; RoBERTa's positions start after it.")
    offset = pad + 1
    if fields["max_len"] <= offset:
        raise UnsupportedModel(
            f"config.json has max_position_embeddings={fields['max_len']}, no room for positions after row {offset}."
        )
    head = "lm_head.dense.weight" in tensors
    return build_config(
        hf,
        "RoBERTa",
        **{**fields, "max_len": fields["max_len"] - offset},
        position_offset=offset,
        output_head=head,
        head_transform=head,
        head_activation="gelu",  # RobertaLMHead calls gelu itself
        tie_embeddings=tied_decoder(hf, tensors, "lm_head.decoder.weight", WORD_EMBEDDINGS),
    )


def _names(config: ModelConfig, tensors: Mapping[str, np.ndarray]) -> Names:
    bias = "lm_head.decoder.bias" if "lm_head.decoder.bias" in tensors else "lm_head.bias"
    return {**body_names(config), **head_names(config, "lm_head.dense", "lm_head.layer_norm", "lm_head.decoder", bias)}


def _ignored(name: str, config: ModelConfig) -> str | None:
    if config.head_transform and matches(name, r"lm_head\.(decoder\.)?bias"):
        return "the masked-LM bias under its second name (transformers ties the two; the decoder's is read)"
    if config.head_transform and config.tie_embeddings and name == "lm_head.decoder.weight":
        return "the word embeddings again: the decoder is tied to them"
    return common_ignored(name)


ADAPTER = Adapter(
    model_type="roberta",
    prefix="roberta.",
    config=_config,
    names=_names,
    ignored=_ignored,
    head_prefixes=("lm_head.",),
    description="RoBERTa (roberta-base, roberta-large, ...): byte-level BPE; RobertaForMaskedLM fills masks",
)
