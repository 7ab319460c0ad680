"""ELECTRA (``model_type: electra``): BERT's body with embeddings of their own width, and two kinds of
checkpoint.

ELECTRA's embeddings are ``embedding_size`` wide (128 for the small models) and projected up to
``hidden_size`` by ``embeddings_project`` before layer 1 (``ModelConfig.embedding_size``). The *generator*
(``ElectraForMaskedLM``) has a masked-LM head: ``generator_predictions`` (dense down to the embedding width,
exact GELU, layer norm) and ``generator_lm_head``, tied to the word embeddings. The *discriminator*
(``ElectraForPreTraining``) predicts which tokens were replaced; it loads here as an encoder without
fill-mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from explorer.model.config import ModelConfig
from explorer.model.pretrained.adapter import Adapter, Names, build_config, matches, read, require, tied_decoder
from explorer.model.pretrained.bert import WORD_EMBEDDINGS, body_config, body_names, common_ignored, head_names


def _config(hf: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> ModelConfig:
    require(hf, "model_type", ("electra",))
    fields = body_config(hf, "ELECTRA")
    width = read(hf, "embedding_size", "ELECTRA")
    head = "generator_predictions.dense.weight" in tensors
    return build_config(
        hf,
        "ELECTRA",
        **fields,
        embedding_size=0 if width == fields["d_model"] else width,
        output_head=head,
        head_transform=head,
        head_activation="gelu",  # ElectraGeneratorPredictions uses gelu whatever hidden_act says
        tie_embeddings=tied_decoder(hf, tensors, "generator_lm_head.weight", WORD_EMBEDDINGS),
    )


def _names(config: ModelConfig, tensors: Mapping[str, np.ndarray]) -> Names:
    head = head_names(
        config,
        "generator_predictions.dense",
        "generator_predictions.LayerNorm",
        "generator_lm_head",
        "generator_lm_head.bias",
    )
    return {**body_names(config), **head}


def _ignored(name: str, config: ModelConfig) -> str | None:
    if matches(name, r"discriminator_predictions\.(dense|dense_prediction)\.(weight|bias)"):
        return "the discriminator's replaced-token head (is each token original?); not a masked-LM head"
    if config.head_transform and config.tie_embeddings and name == "generator_lm_head.weight":
        return "the word embeddings again: the decoder is tied to them"
    return common_ignored(name)


ADAPTER = Adapter(
    model_type="electra",
    prefix="electra.",
    config=_config,
    names=_names,
    ignored=_ignored,
    head_prefixes=("generator_predictions.", "generator_lm_head.", "discriminator_predictions."),
    description="ELECTRA (google/electra-small-generator, ...-discriminator): WordPiece; the generator fills masks",
)
