"""The Transformer encoder, composed of named parts, returning every intermediate a view needs.

Glossary of shapes:
  B: batch size
  T: sequence length (a padded bucket length inside jit)
  D: model width (d_model)
  E: embedding width (D, unless ELECTRA-style embeddings are projected up to D)
  H: number of heads
  K: key size per head (D / H)
  F: feed-forward width
  L: number of layers
  N: number of layer norms (2 per layer, plus one on the embeddings for BERT when E = D, plus a final one for
     pre-LN)
  V: vocabulary size (0 for a model without an output head)

The parts, one module each: ``Embeddings`` (token, position, token type, embedding norm),
``EncoderLayer`` (self-attention and feed-forward with their norms, post- or pre-LN), and ``OutputHead``
(tied, untied or none). A model variant is configuration of the parts (``ModelConfig``), not a branch
here. Parameter names are those of the checkpoints: ``encoder/token_embedding``,
``encoder/layer_0/attention/query``, ``encoder/final_norm``, ``encoder/output_head``, ...
``hk.transform`` is applied in exactly one place: ``build_model``.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from explorer.model.attention import attention_mask
from explorer.model.config import ModelConfig
from explorer.model.embeddings import Embeddings
from explorer.model.layer import EncoderLayer, dropout, layer_norm
from explorer.model.output_head import OutputHead


class EncoderOutput(NamedTuple):
    """Everything the forward pass computes that a visualisation may want."""

    # [B, T, V] token predictions (masked-token or next-token). A model without an output head
    # (config.output_head False) has no predictions: [B, T, 0], an empty last axis, so that slicing and
    # batching code keeps working while nothing can be mistaken for a prediction.
    logits: jax.Array
    final_hidden: jax.Array  # [B, T, D] the representation the output head (or a sentence pooling) reads
    token_embeddings: jax.Array  # [B, T, E] embedding rows, scaled by sqrt(E) when config.scale_embeddings
    positional_encodings: jax.Array  # [T, E] what is added for position (zeros for "none")
    token_type_embeddings: jax.Array  # [B, T, E] the segment-0 row added to every token (zeros without types)
    embedding_sum: jax.Array  # [B, T, E] token + position + type; layer 1's input unless config.embedding_norm
    attention_scores: jax.Array  # [L, B, H, T, T] q.k / sqrt(K) before masking and softmax
    attention_weights: jax.Array  # [L, B, H, T, T] softmax weights; masked keys are exactly 0
    attention_outputs: jax.Array  # [L, B, T, D] attention sub-layer output (before the residual add)
    ffn_outputs: jax.Array  # [L, B, T, D] feed-forward sub-layer output (before the residual add)
    hidden_states: jax.Array  # [2L+1, B, T, D] residual stream: layer 1's input, then after every sub-layer
    layer_norm_inputs: jax.Array  # [N, B, T, D] what each layer norm normalised
    layer_norm_outputs: jax.Array  # [N, B, T, D] what each layer norm produced


def _embedding_norm_listed(config: ModelConfig) -> bool:
    """Whether the embedding layer norm is one of the ``N`` stacked with the others: only when it is as wide
    as they are (an ELECTRA embedding norm is E wide; its output is still ``EncoderOutput.hidden_states[0]``
    before the projection, so it is left out of the stack rather than padded)."""
    return config.embedding_norm and config.embedding_width == config.d_model


def _layer_norms(config: ModelConfig) -> list[tuple[str, str]]:
    """The ``N`` layer norms in the order of ``EncoderOutput.layer_norm_*``: ``(label, Haiku module name)``."""
    norms = [("embedding LN", "encoder/embedding_norm")] if _embedding_norm_listed(config) else []
    for layer in range(config.num_layers):
        norms += [
            (f"layer {layer + 1} · attention LN", f"encoder/layer_{layer}/attention_norm"),
            (f"layer {layer + 1} · feed-forward LN", f"encoder/layer_{layer}/ffn_norm"),
        ]
    if config.layer_norm == "pre":
        norms.append(("final LN", "encoder/final_norm"))
    return norms


def layer_norm_names(config: ModelConfig) -> list[str]:
    """Names of the ``N`` layer norms, in the order of ``EncoderOutput.layer_norm_*``."""
    return [label for label, _ in _layer_norms(config)]


def layer_norm_param_names(config: ModelConfig) -> list[str]:
    """Haiku module names of the layer norms, aligned with ``layer_norm_names``."""
    return [module for _, module in _layer_norms(config)]


def hidden_state_names(config: ModelConfig) -> list[str]:
    """Names of the ``2L+1`` residual-stream snapshots in ``EncoderOutput.hidden_states``."""
    first = "embedding + position" + (" + type" if config.token_types else "")
    first += " · after LN" if config.embedding_norm else ""
    names = [first + (" · projected" if config.embedding_width != config.d_model else "")]
    for layer in range(config.num_layers):
        names += [f"layer {layer + 1} · after attention", f"layer {layer + 1} · after feed-forward"]
    return names


class Encoder(hk.Module):
    """``Embeddings``, then ``num_layers`` ``EncoderLayer``s, a final layer norm for pre-LN, and the ``OutputHead``."""

    def __init__(self, config: ModelConfig, name: str = "encoder"):
        super().__init__(name=name)
        self.config = config

    def __call__(
        self,
        token_ids: jax.Array,  # [B, T] int32 model ids
        mask: jax.Array,  # [B, T] bool, True at real tokens
        head_mask: jax.Array | None = None,  # [L, H]
        causal: bool | jax.Array = False,
        is_training: bool = False,
        predict_at: jax.Array | None = None,  # [B, P] positions; see below
    ) -> EncoderOutput | jax.Array:
        """Runs the encoder and returns every intermediate (``EncoderOutput``).

        ``causal`` may be a Python bool or a traced boolean scalar: the inference engine passes an array
        so that toggling the decoder-style mask does not compile a second program.

        ``predict_at`` is for training: it returns only the final hidden states at those positions,
        ``[B, P, D]``, and computes the last layer only there (``EncoderLayer``'s ``queries``): for
        masked-token prediction (P = 15% of T) that skips most of the last layer, and the loss and
        gradients are unchanged.
        """
        cfg = self.config
        length = token_ids.shape[1]
        if length > cfg.max_len:
            raise ValueError(f"Sequence length {length} exceeds max_len {cfg.max_len}; use a shorter input.")
        if head_mask is None:
            head_mask = jnp.ones((cfg.num_layers, cfg.num_heads), jnp.float32)  # [L, H]
        rate = cfg.dropout if is_training else 0.0
        attend = attention_mask(mask, causal)  # [B, 1, 1 | T, T]

        embedded = Embeddings(cfg)(token_ids)
        x = dropout(embedded.output, rate)  # [B, T, D]
        layers = []
        for index in range(cfg.num_layers):
            queries = predict_at if index == cfg.num_layers - 1 else None  # [B, P] or None (all T)
            layer = EncoderLayer(cfg, name=f"layer_{index}")
            layers.append(layer(x, attend, head_mask[index], queries, rate, is_training=is_training))
            x = layers[-1].output  # [B, T, D]; [B, P, D] after the last layer with predict_at
        final = x
        if cfg.layer_norm == "pre":
            # Pre-LN leaves the residual stream un-normalised; a final LN puts it on the output's scale.
            final = layer_norm("final_norm", cfg.layer_norm_eps)(x)  # [B, T, D]
        if predict_at is not None:
            return final  # [B, P, D]
        logits = OutputHead(cfg)(final, embedded.table)  # [B, T, V]
        return _collect(cfg, embedded, layers, x, final, logits)


def _collect(
    cfg: ModelConfig, embedded, layers: list, before_final: jax.Array, final: jax.Array, logits
) -> EncoderOutput:
    """The parts' outputs stacked into one ``EncoderOutput``, layer norms in ``layer_norm_names`` order."""
    norm_in = [embedded.embedding_sum] if _embedding_norm_listed(cfg) else []
    norm_out = [embedded.normalised] if _embedding_norm_listed(cfg) else []
    for layer in layers:
        norm_in += layer.norm_inputs
        norm_out += layer.norm_outputs
    if cfg.layer_norm == "pre":
        norm_in.append(before_final)
        norm_out.append(final)
    hidden_states = [embedded.output]
    for layer in layers:
        hidden_states += [layer.after_attention, layer.output]
    return EncoderOutput(
        logits=logits,
        final_hidden=final,
        token_embeddings=embedded.token_embeddings,
        positional_encodings=embedded.positional_encodings,
        token_type_embeddings=embedded.token_type_embeddings,
        embedding_sum=embedded.embedding_sum,
        attention_scores=jnp.stack([layer.attention_scores for layer in layers]),  # [L, B, H, T, T]
        attention_weights=jnp.stack([layer.attention_weights for layer in layers]),  # [L, B, H, T, T]
        attention_outputs=jnp.stack([layer.attention_output for layer in layers]),  # [L, B, T, D]
        ffn_outputs=jnp.stack([layer.ffn_output for layer in layers]),  # [L, B, T, D]
        hidden_states=jnp.stack(hidden_states),  # [2L+1, B, T, D]
        layer_norm_inputs=jnp.stack(norm_in),  # [N, B, T, D]
        layer_norm_outputs=jnp.stack(norm_out),  # [N, B, T, D]
    )


def build_model(config: ModelConfig) -> hk.Transformed:
    """The one place ``hk.transform`` is applied.

    ``apply(params, rng, token_ids, mask, head_mask=None, causal=False, is_training=False, predict_at=None)``;
    pass ``rng=None`` when not training (dropout is then off). Returns an ``EncoderOutput``, or with
    ``predict_at`` (``[B, P]`` positions) the final hidden states there, ``[B, P, D]`` (see ``Encoder``).
    """

    def forward(token_ids, mask, head_mask=None, causal=False, is_training=False, predict_at=None):
        encoder = Encoder(config)
        return encoder(token_ids, mask, head_mask, causal=causal, is_training=is_training, predict_at=predict_at)

    return hk.transform(forward)


def init_params(config: ModelConfig, seed: int = 0) -> hk.Params:
    """Fresh parameters for ``config``; shapes do not depend on the example length."""
    model = build_model(config)
    ids = jnp.zeros((1, 2), jnp.int32)
    return model.init(jax.random.PRNGKey(seed), ids, jnp.ones((1, 2), bool))


def count_parameters(params: hk.Params) -> dict[str, int]:
    """Parameter count per Haiku module, e.g. ``{"encoder/layer_0/attention/query": 4160, ...}``.

    Parameters that sit on the encoder itself (a learned positional table, a tied head's bias) are counted
    one by one, ``encoder/positional_embedding``, so each can be grouped with what it belongs to.
    """
    counts = {}
    for module, leaves in params.items():
        if module == "encoder":
            counts.update({f"{module}/{name}": int(np.prod(p.shape)) for name, p in leaves.items()})
        else:
            counts[module] = sum(int(np.prod(p.shape)) for p in leaves.values())
    return counts
