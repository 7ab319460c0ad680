"""The logit lens (nostalgebraist 2020): read the residual stream at every depth through the output head.

The output head turns the final hidden state into token predictions. Applied to the residual stream after
every sub-layer instead, it shows what the model "would predict" if it stopped there: how early the
answer appears and what each layer changes. A pre-LN model's stream is not normalised until its final
layer norm, so the lens applies that layer norm first, as the model does; a post-LN model's stream is
already normalised after every sub-layer, and its last snapshot is exactly the final hidden state.

Glossary of shapes (as in ``explorer.model.encoder``): S residual-stream snapshots (2L+1), T tokens, D model width,
V vocabulary size, k predictions kept per position.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import numpy as np

from explorer.interpret.analysis import layer_norm_parameters
from explorer.model.config import ModelConfig
from explorer.model.output_head import OUTPUT_HEAD, TIED_BIAS, output_logits
from explorer.text.vocab import Vocab

FINAL_NORM = "encoder/final_norm"  # pre-LN only
LAYER_NORM_EPS = 1e-5  # hk.LayerNorm's default, which the model uses


class LogitLens(NamedTuple):
    ids: np.ndarray  # [S, T, k] model ids of the most probable tokens at each snapshot, most probable first
    probabilities: np.ndarray  # [S, T, k] their probabilities


def layer_norm(x: np.ndarray, scale: np.ndarray, offset: np.ndarray, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """``hk.LayerNorm`` over the last axis, in numpy: ``(x - mean) / sqrt(var + eps) * scale + offset``."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)  # [..., D]
    return centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps) * scale + offset  # [..., D]


def check_output_head(params: hk.Params) -> None:
    """Raises a ``ValueError`` that says why when a model has no output head to read the stream with."""
    if OUTPUT_HEAD not in params and TIED_BIAS[1] not in params.get(TIED_BIAS[0], {}):
        raise ValueError(
            "This model has no output head, so its residual stream cannot be read as token predictions: the "
            "logit lens needs a model trained with a prediction head (e.g. masked-token prediction)."
        )


def lens_logits(params: hk.Params, config: ModelConfig, hidden_states: np.ndarray) -> np.ndarray:
    """The output head applied to every snapshot of one sentence's residual stream.

    Args:
      hidden_states: ``[S, T, D]``, the ``hidden_states`` of an ``Inspection``.

    Returns:
      ``[S, T, V]`` logits; the last snapshot's are the model's own logits.
    """
    check_output_head(params)
    hidden = np.asarray(hidden_states, np.float32)
    if hidden.ndim != 3 or hidden.shape[-1] != config.d_model:
        raise ValueError(f"Expected hidden states of shape [S, T, {config.d_model}], got {hidden.shape}.")
    if config.layer_norm == "pre":
        if FINAL_NORM not in params:
            raise ValueError(
                f"This pre-LN model has no final layer norm ({FINAL_NORM}); its parameters are incomplete."
            )
        scale, offset = layer_norm_parameters(params, FINAL_NORM)
        hidden = layer_norm(hidden, scale, offset, config.layer_norm_eps).astype(np.float32)  # [S, T, D]
    # float32, as the model computes it: for 512 tokens and a large vocabulary [S, T, V] is big already.
    numpy_params = {
        module: {k: np.asarray(v, np.float32) for k, v in leaves.items()} for module, leaves in params.items()
    }
    return np.asarray(output_logits(numpy_params, hidden, config))  # [S, T, V]


def logit_lens(params: hk.Params, config: ModelConfig, hidden_states: np.ndarray, k: int = 5) -> LogitLens:
    """The ``k`` most probable tokens at every snapshot and position (see ``lens_logits``)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    logits = lens_logits(params, config, hidden_states)  # [S, T, V]
    k = min(k, logits.shape[-1])
    top = np.argpartition(-logits, k - 1, axis=-1)[..., :k]  # [S, T, k] unordered
    top_logits = np.take_along_axis(logits, top, axis=-1)  # [S, T, k]
    order = np.argsort(-top_logits, axis=-1, kind="stable")  # [S, T, k]
    # Probabilities of the kept tokens only, exp(logit - logsumexp): no second [S, T, V] array is kept.
    peak = logits.max(axis=-1, keepdims=True)  # [S, T, 1]
    log_total = peak + np.log(np.exp(logits - peak).sum(axis=-1, keepdims=True))  # [S, T, 1]
    probabilities = np.exp(np.take_along_axis(top_logits, order, axis=-1) - log_total)  # [S, T, k]
    return LogitLens(ids=np.take_along_axis(top, order, axis=-1), probabilities=probabilities)


def lens_rows(lens: LogitLens, vocab: Vocab) -> list[list[dict]]:
    """The lens in JSON-ready form: one row per snapshot, each ``[T]`` of
    ``{"token", "probability", "top": [{"token", "probability"}, ...k]}`` (``token`` is the top one)."""
    texts: dict[int, str] = {}

    def text(model_id: int) -> str:
        if model_id not in texts:
            texts[model_id] = vocab.token_text(model_id)
        return texts[model_id]

    rows = []
    for snapshot_ids, snapshot_probabilities in zip(lens.ids, lens.probabilities, strict=True):
        row = []
        for ids, probabilities in zip(snapshot_ids, snapshot_probabilities, strict=True):
            top = [{"token": text(int(i)), "probability": float(p)} for i, p in zip(ids, probabilities, strict=True)]
            row.append({**top[0], "top": top})
        rows.append(row)
    return rows
