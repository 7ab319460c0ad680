"""The model's forward pass as a walk of tensor shapes, and its parameters grouped for a chart (the Model page).

Glossary of shapes (as in ``explorer.model.encoder``): T tokens, D model width, H heads, K key size, F feed-forward
width, V vocabulary size, E embedding width (D unless ELECTRA's narrower embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

from explorer.model.config import ModelConfig

# ModelConfig.ACTIVATIONS as a step names them.
ACTIVATION_NAMES = {"gelu": "GELU", "gelu_tanh": "GELU (tanh form)", "relu": "ReLU"}


@dataclass(frozen=True)
class ShapeStep:
    stage: str  # where in the model ("input", "layer 1", "output")
    operation: str  # what happens
    symbol: str  # the shape in glossary letters, e.g. "[T, D]"
    shape: tuple[int, ...]  # the same shape with this input's numbers


def shape_walk(config: ModelConfig, length: int) -> list[ShapeStep]:
    """Every step of one forward pass with the tensor shape it makes, for a ``length``-token input.

    Shapes are for one sentence (batch axis dropped); inside jit the sentence is padded to its bucket.
    """
    t, d, h, k, f, v = length, config.d_model, config.num_heads, config.key_size, config.ffn_size, config.vocab_size
    e = config.embedding_width
    # The input steps follow the config, as the encoder does: BERT adds its rows unscaled, adds a
    # token-type row and layer-normalises the sum; the paper scales the rows by sqrt(D). ELECTRA's
    # embeddings are E wide and projected up to D before layer 1.
    width = "E" if e != d else "D"
    lookup = f"token embedding lookup x sqrt({width}={e})" if config.scale_embeddings else "token embedding lookup"
    steps = [
        ShapeStep("input", "token ids (model vocabulary)", "[T]", (t,)),
        ShapeStep("input", lookup, f"[T, {width}]", (t, e)),
    ]
    if config.positional != "none":
        steps.append(ShapeStep("input", f"positional encoding ({config.positional})", f"[T, {width}]", (t, e)))
    if config.token_types:
        steps.append(ShapeStep("input", "token-type embedding (segment 0)", f"[T, {width}]", (t, e)))
    if config.embedding_norm:
        steps.append(ShapeStep("input", "sum, then layer norm (embedding)", f"[T, {width}]", (t, e)))
    if e != d:
        steps.append(ShapeStep("input", "linear E -> D (embedding projection)", "[T, D]", (t, d)))
    steps.append(ShapeStep("input", "the residual stream enters layer 1", "[T, D]", (t, d)))
    pre = config.layer_norm == "pre"
    for layer in range(config.num_layers):
        stage = f"layer {layer + 1}"
        if pre:
            steps.append(ShapeStep(stage, "layer norm (attention)", "[T, D]", (t, d)))
        steps += [
            ShapeStep(stage, "queries, keys, values: linear D -> H x K, split heads", "3 x [T, H, K]", (3, t, h, k)),
            ShapeStep(stage, "scores q·kᵀ / sqrt(K)", "[H, T, T]", (h, t, t)),
            ShapeStep(stage, "softmax over keys: attention weights", "[H, T, T]", (h, t, t)),
            ShapeStep(stage, "weights x values", "[T, H, K]", (t, h, k)),
            ShapeStep(stage, "concatenate heads, output linear H x K -> D", "[T, D]", (t, d)),
            ShapeStep(stage, "add to the residual stream", "[T, D]", (t, d)),
        ]
        if not pre:
            steps.append(ShapeStep(stage, "layer norm (attention)", "[T, D]", (t, d)))
        if pre:
            steps.append(ShapeStep(stage, "layer norm (feed-forward)", "[T, D]", (t, d)))
        steps += [
            ShapeStep(stage, f"feed-forward expand D -> F, {ACTIVATION_NAMES[config.activation]}", "[T, F]", (t, f)),
            ShapeStep(stage, "feed-forward contract F -> D", "[T, D]", (t, d)),
            ShapeStep(stage, "add to the residual stream", "[T, D]", (t, d)),
        ]
        if not pre:
            steps.append(ShapeStep(stage, "layer norm (feed-forward)", "[T, D]", (t, d)))
    if pre:
        steps.append(ShapeStep("output", "final layer norm", "[T, D]", (t, d)))
    if not config.output_head:
        return steps  # a sentence encoder: its output is the final hidden states
    if config.head_transform:
        name = ACTIVATION_NAMES[config.head_activation]
        steps.append(ShapeStep("output", f"head transform: linear D -> E, {name}, layer norm", "[T, E]", (t, e)))
    read = "E" if config.head_transform else "D"
    head = (
        "output head: hidden · embeddingᵀ + bias (tied)"
        if config.tie_embeddings
        else f"output head: linear {read} -> V"
    )
    steps.append(ShapeStep("output", f"{head} (logits)", "[T, V]", (t, v)))
    return steps


def parameter_groups(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    """``(group, module, count)`` rows from ``count_parameters``: group is "embedding", "layer 1", ..."""
    rows = []
    for module, count in counts.items():
        parts = module.split("/")
        group = "other"
        for part in parts:
            if part.startswith("layer_") and part[6:].isdigit():
                group = f"layer {int(part[6:]) + 1}"
                break
        else:
            if "embedding" in module:
                group = "embedding"
            elif "output_head" in module or "output_bias" in module or module.startswith("encoder/head_"):
                group = "output head"
            elif "final_norm" in module:
                group = "final layer norm"
        short = "/".join(p for p in parts if p != "encoder" and not p.startswith("layer_")) or module
        rows.append((group, short, int(count)))
    return rows
