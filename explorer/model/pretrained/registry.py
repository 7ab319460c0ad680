"""The architectures this app runs, by ``config.json``'s ``model_type``: one adapter each.

A new member of the family is one entry here and one module beside this one (its config translation and
tensor-name map, ``explorer.model.pretrained.adapter.Adapter``); the encoder itself gains configuration of
its named parts (``ModelConfig``), never a branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from explorer.model.pretrained import bert, distilbert, electra, roberta
from explorer.model.pretrained.adapter import Adapter, UnsupportedModel

SUPPORTED_ARCHITECTURES: dict[str, Adapter] = {
    "bert": bert.ADAPTER,
    "roberta": roberta.ADAPTER,
    "distilbert": distilbert.ADAPTER,
    "electra": electra.ADAPTER,
}


def adapter_for(hf_config: Mapping[str, Any]) -> Adapter:
    """The adapter for a ``config.json``; an ``UnsupportedModel`` naming the supported ones otherwise."""
    model_type = hf_config.get("model_type") if isinstance(hf_config, Mapping) else None
    if model_type in SUPPORTED_ARCHITECTURES:
        return SUPPORTED_ARCHITECTURES[model_type]
    supported = ", ".join(SUPPORTED_ARCHITECTURES)
    if model_type is None:
        raise UnsupportedModel(f"config.json has no model_type; this app runs {supported}.")
    raise UnsupportedModel(f"model_type {model_type!r} is not supported; this app runs {supported} (the BERT family).")
