"""One layer, one head, one query token, step by step with the model's own numbers.

Recomputes what ``explorer.model.layer.EncoderLayer`` computes for one token, in plain numpy and float64,
from the parameters and the residual stream entering the layer (``hidden_states[2·layer]`` of an
``Inspection``: the model's own number for everything before the layer). Every intermediate becomes a
``Step`` with its formula, its value and a caption in plain words, in the order the layer computes them:

  input → (pre-LN: input_norm) → query, keys, values → scores → (mask) → weights → head_output →
  heads_concatenated → attention_output → (post-LN: attention_residual) → after_attention →
  (pre-LN: ffn_norm) → ffn_hidden → ffn_activation → ffn_output → (post-LN: ffn_residual) → layer_output

Nothing here calls the Haiku model: the tests compare this recomputation with the encoder's own attention
weights and residual snapshots, so the two are independent witnesses of the same arithmetic.

The layer's arithmetic is the same for every model the config describes; what differs is read from it: the
layer-norm placement and ε, the feed-forward activation (``ModelConfig.activation``, in numpy in
``explorer.interpret.activations``), and, for the first layer's caption, what the embeddings add up to.
Everything before the layer (a position offset, a narrow embedding's projection) is in the residual stream
the encoder hands in; a masked-LM head's transform comes after the last layer.

Glossary of shapes (as in ``explorer.model.encoder``): T tokens, D model width, E embedding width, H heads,
K key size, F feed-forward width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import haiku as hk
import numpy as np

from explorer.interpret.activations import activation_for
from explorer.model.config import ModelConfig

VECTOR = "vector"  # one vector of the query token ([K], [D], [H·K] or [F])
PER_KEY = "per_key"  # one number per key token ([T])
PER_TOKEN = "per_token"  # one row per token ([T, K])


@dataclass(frozen=True)
class Step:
    """One intermediate of the layer for the query token."""

    name: str  # stable identifier ("query", "weights", ...), as in the command line's JSON
    symbol: str  # what the formulas call it ("q", "x + a"), to label it in a picture
    title: str  # heading for a person
    formula: str  # LaTeX
    value: np.ndarray  # float64; the shape says what it is (see ``kind``)
    caption: str  # what the step does, in plain words, with this token's numbers
    kind: str = VECTOR  # VECTOR, PER_KEY or PER_TOKEN
    shown_with: tuple[str, ...] = ()  # earlier steps a picture of this one should show beside it
    highlight: tuple[int, int] | None = None  # [start, stop) entries to outline (this head's slice)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)


@dataclass(frozen=True)
class LayerTrace:
    layer: int  # 0-based
    head: int  # 0-based
    position: int  # the query token
    tokens: tuple[str, ...]
    causal: bool
    steps: tuple[Step, ...]

    def __getitem__(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"No step {name!r}; the steps are {[s.name for s in self.steps]}.")

    def __contains__(self, name: str) -> bool:
        return any(step.name == name for step in self.steps)


def _linear(params: hk.Params, module: str) -> tuple[np.ndarray, np.ndarray]:
    if module not in params:
        raise ValueError(f"The parameters have no {module}; they do not belong to this model.")
    return np.asarray(params[module]["w"], np.float64), np.asarray(params[module]["b"], np.float64)


def _layer_norm(params: hk.Params, module: str, x: np.ndarray, eps: float) -> np.ndarray:
    """``γ ⊙ (x − mean) / sqrt(var + ε) + β`` over the last axis (biased variance, as hk.LayerNorm)."""
    scale = np.asarray(params[module]["scale"], np.float64)
    offset = np.asarray(params[module]["offset"], np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps) * scale + offset


def _masked_softmax(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    peak = scores[allowed].max()
    exp = np.where(allowed, np.exp(np.where(allowed, scores - peak, 0.0)), 0.0)
    return exp / exp.sum()


def _name(tokens: Sequence[str], index: int) -> str:
    return f"{index} “{tokens[index]}”"


def _ln_formula(v: str) -> str:
    return rf"\mathrm{{LN}}({v}) = \gamma \odot \frac{{{v} - \mu}}{{\sqrt{{\sigma^2 + \epsilon}}}} + \beta"


def trace_layer(
    params: hk.Params,
    config: ModelConfig,
    hidden_states: np.ndarray,
    layer: int,
    head: int,
    position: int,
    *,
    causal: bool = False,
    real: np.ndarray | None = None,
    head_mask: np.ndarray | None = None,
    tokens: Sequence[str] | None = None,
) -> LayerTrace:
    """Every step of layer ``layer`` for the query at ``position``, seen through head ``head`` (0-based).

    Args:
      hidden_states: ``[2L+1, T, D]`` residual-stream snapshots (``Inspection.hidden_states``); the layer
        reads snapshot ``2·layer`` for every token (its keys and values) and the rest is recomputed.
      causal: each query sees only keys at or before it.
      real: ``[T]`` True at real tokens (default: all); padding keys are masked.
      head_mask: ``[L, H]`` 1 keeps a head, 0 switches it off (as the encoder's ``head_mask``).
      tokens: ``T`` token labels for the captions.
    """
    cfg = config
    stream = np.asarray(hidden_states, np.float64)
    if stream.ndim != 3 or stream.shape[0] != 2 * cfg.num_layers + 1 or stream.shape[2] != cfg.d_model:
        raise ValueError(
            f"hidden_states must be [{2 * cfg.num_layers + 1}, T, {cfg.d_model}] for this model, got {stream.shape}."
        )
    length = stream.shape[1]
    for what, value, count in (("layer", layer, cfg.num_layers), ("head", head, cfg.num_heads)):
        if not 0 <= value < count:
            raise ValueError(f"{what} {value + 1} does not exist: the model has {count} {what}s (1–{count}).")
    real = np.ones(length, bool) if real is None else np.asarray(real, bool)
    if not 0 <= position < length or not real[position]:
        raise ValueError(f"position {position} is not a token of the text: it has {int(real.sum())} (0–{length - 1}).")
    tokens = tuple(tokens) if tokens is not None else tuple(str(i) for i in range(length))
    if len(tokens) != length:
        raise ValueError(f"{len(tokens)} token labels for {length} positions; pass the labels of the same text.")
    head_mask = np.ones((cfg.num_layers, cfg.num_heads)) if head_mask is None else np.asarray(head_mask, np.float64)

    D, H, K, F, eps = cfg.d_model, cfg.num_heads, cfg.key_size, cfg.ffn_size, cfg.layer_norm_eps
    L, p, pre = layer + 1, position, cfg.layer_norm == "pre"
    prefix = f"encoder/layer_{layer}"
    me = _name(tokens, p)
    steps: list[Step] = []

    def add(name, symbol, title, formula, value, caption, **extra) -> np.ndarray:
        steps.append(Step(name, symbol, title, formula, np.asarray(value, np.float64), caption, **extra))
        return steps[-1].value

    x_all = stream[2 * layer]  # [T, D]
    if layer == 0:  # what the embeddings add up to, for this model
        E = cfg.embedding_width
        parts = ["the token's embedding" + (f" (× √{E})" if cfg.scale_embeddings else "")]
        parts += [f"its {cfg.positional} position encoding"] if cfg.positional != "none" else []
        parts += ["its token type"] if cfg.token_types else []
        origin = " plus ".join(parts) + (", layer-normalised" if cfg.embedding_norm else "")
        if E != D:  # ELECTRA: the embeddings are narrower than the stream
            origin += f", {E} numbers projected up to {D}"
    else:
        origin = f"layer {layer}'s output"
    x = add(
        "input",
        "x",
        "Input: the residual stream",
        rf"x = h^{{({layer})}}_{{{p}}} \in \mathbb{{R}}^{{{D}}}",
        x_all[p],
        f"Token {me} enters layer {L} as {D} numbers: {origin}. Every sub-layer reads this stream and adds "
        "its own result to it.",
    )
    reads = x_all
    if pre:
        reads = _layer_norm(params, f"{prefix}/attention_norm", x_all, eps)  # [T, D]
        add(
            "input_norm",
            "LN(x)",
            "Layer norm before attention (pre-LN)",
            r"\tilde{x} = " + _ln_formula("x"),
            reads[p],
            "Pre-LN: attention reads a normalised copy of every token's vector: shifted to mean 0, scaled to "
            f"standard deviation 1 (ε = {eps:g} guards the division), then scaled by γ and shifted by β (learned, "
            "one per dimension). The stream itself passes on unchanged.",
            shown_with=("input",),
        )
    source = r"\tilde{x}" if pre else "x"
    sources = r"\tilde{X}" if pre else "X"
    columns = slice(head * K, (head + 1) * K)  # this head's K of the H·K outputs
    projections = {}
    for name in ("query", "key", "value", "output"):
        projections[name] = _linear(params, f"{prefix}/attention/{name}")
    (wq, bq), (wk, bk), (wv, bv) = (projections[n] for n in ("query", "key", "value"))
    h = head + 1
    q = add(
        "query",
        "q",
        "Query",
        rf"q = {source}\,W_Q^{{({h})}} + b_Q^{{({h})}} \in \mathbb{{R}}^{{{K}}}",
        reads[p] @ wq[:, columns] + bq[columns],
        f"Head {h} turns token {me} into a query of {K} numbers: what this token is looking for. Each head has "
        f"its own W_Q ({D}×{K}), so each head asks its own question.",
    )
    keys = add(
        "keys",
        "K",
        "Keys",
        rf"K = {sources}\,W_K^{{({h})}} + b_K^{{({h})}} \in \mathbb{{R}}^{{{length} \times {K}}}",
        reads @ wk[:, columns] + bk[columns],
        "Every token, this one included, gets a key from the same head: what it offers to a query that "
        "matches it. One row per token.",
        kind=PER_TOKEN,
    )
    values = add(
        "values",
        "V",
        "Values",
        rf"V = {sources}\,W_V^{{({h})}} + b_V^{{({h})}} \in \mathbb{{R}}^{{{length} \times {K}}}",
        reads @ wv[:, columns] + bv[columns],
        "…and a value: what it passes on to a query that attends to it.",
        kind=PER_TOKEN,
    )
    scores = keys @ q / math.sqrt(K)  # [T]
    allowed = real & (np.arange(length) <= p if causal else True)  # [T]
    best = int(np.argmax(np.where(allowed, scores, -np.inf)))
    add(
        "scores",
        "s",
        "Scores",
        rf"s_j = \frac{{k_j \cdot q}}{{\sqrt{{d_k}}}} = \frac{{k_j \cdot q}}{{\sqrt{{{K}}}}}",
        scores,
        f"Each key is compared with the query by a dot product: the better they match, the higher the score. "
        f"Dividing by √{K} keeps scores from growing with the key size, which would saturate the softmax (one "
        f"weight near 1, all others near 0). Highest score: {_name(tokens, best)}, {scores[best]:.2f}.",
        kind=PER_KEY,
    )
    if not allowed.all():
        hidden = int((~allowed).sum())
        why = [f"the {int((real & ~allowed).sum())} keys after it (causal mask)"] if causal else []
        why += [f"{int((~real).sum())} padding positions"] if (~real).any() else []
        rule = r"j > " + str(p) if causal else r"j \text{ padding}"
        add(
            "mask",
            "mask",
            "Mask",
            rf"s_j \leftarrow -\infty \quad \text{{for }} {rule}",
            allowed.astype(np.float64),
            f"{hidden} of {length} keys may not be seen: {' and '.join(why)}. Their scores become −∞, so the "
            "softmax gives them exactly 0. (1 = may be attended to, 0 = masked.)",
            kind=PER_KEY,
            shown_with=("scores",),
        )
    weights = _masked_softmax(scores, allowed)
    add(
        "weights",
        "w",
        "Attention weights (softmax)",
        r"w_j = \frac{e^{s_j}}{\sum_i e^{s_i}}",
        weights,
        f"The softmax turns scores into weights between 0 and 1 that add up to 1; a score a few units above the "
        f"others takes most of the weight: {_name(tokens, best)} gets {weights[best]:.2f}. This is row {p} of "
        f"the Attention page's heatmap for layer {L}, head {h}.",
        kind=PER_KEY,
        shown_with=("scores",),
    )
    add(
        "head_output",
        "o",
        "Head output",
        rf"o^{{({h})}} = \sum_j w_j\, v_j \in \mathbb{{R}}^{{{K}}}",
        weights @ values,
        f"The head's output is the values averaged with those weights: what head {h} brings back to token {me}.",
    )
    contexts = (reads @ wv + bv).reshape(length, H, K)  # [T, H, K] every head's values
    every_query = (reads[p] @ wq + bq).reshape(H, K)  # [H, K]
    every_key = (reads @ wk + bk).reshape(length, H, K)  # [T, H, K]
    every_score = np.einsum("hk,thk->ht", every_query, every_key) / math.sqrt(K)  # [H, T]
    every_weight = np.stack([_masked_softmax(row, allowed) for row in every_score])  # [H, T]
    concatenated = np.einsum("ht,thk->hk", every_weight, contexts) * head_mask[layer][:, None]  # [H, K]
    off = [str(i + 1) for i in np.flatnonzero(head_mask[layer] == 0)]
    add(
        "heads_concatenated",
        "[o¹; …; oᴴ]",
        "All heads side by side",
        rf"[o^{{(1)}}; \dots; o^{{({H})}}] \in \mathbb{{R}}^{{{H * K}}}",
        concatenated.reshape(H * K),
        f"All {H} heads do the same at once, each with its own question; their outputs are put side by side "
        f"({H} × {K} = {H * K} numbers). Head {h}'s part is outlined."
        + (f" Switched-off heads ({', '.join(off)}) contribute zeros." if off else ""),
        highlight=(head * K, (head + 1) * K),
    )
    wo, bo = projections["output"]
    attention = add(
        "attention_output",
        "a",
        "Attention output",
        rf"a = [o^{{(1)}}; \dots; o^{{({H})}}]\,W_O + b_O \in \mathbb{{R}}^{{{D}}}",
        concatenated.reshape(H * K) @ wo + bo,
        f"W_O ({H * K}×{D}) mixes the heads back into the model's width: this is what attention adds to the "
        "token's stream.",
    )
    residual = x + attention
    if pre:
        after = add(
            "after_attention",
            "h",
            "Residual add: after attention",
            r"h = x + a",
            residual,
            "The residual connection adds attention's result to the input: the token keeps what it was and gains "
            "what it gathered. Pre-LN leaves the sum as it is: the stream after attention.",
            shown_with=("input", "attention_output"),
        )
        ffn_in = add(
            "ffn_norm",
            "LN(h)",
            "Layer norm before the feed-forward net (pre-LN)",
            r"\tilde{h} = " + _ln_formula("h"),
            _layer_norm(params, f"{prefix}/ffn_norm", after, eps),
            "The feed-forward net reads a normalised copy of the stream, with its own γ and β.",
            shown_with=("after_attention",),
        )
    else:
        add(
            "attention_residual",
            "x + a",
            "Residual add",
            r"x + a",
            residual,
            "The residual connection adds attention's result to the input: the token keeps what it was and gains "
            "what it gathered.",
            shown_with=("input", "attention_output"),
        )
        after = ffn_in = add(
            "after_attention",
            "h",
            "Layer norm: after attention (post-LN)",
            "h = " + _ln_formula("x + a"),
            _layer_norm(params, f"{prefix}/attention_norm", residual, eps),
            f"Post-LN: the sum is shifted to mean 0 (μ) and scaled to standard deviation 1 (σ) across its {D} "
            f"numbers, ε = {eps:g} guarding the division, then scaled by γ and shifted by β (learned per "
            "dimension). This is the stream after attention.",
            shown_with=("attention_residual",),
        )
    activation = activation_for(cfg)
    (w1, b1), (w2, b2) = _linear(params, f"{prefix}/ffn/expand"), _linear(params, f"{prefix}/ffn/contract")
    ffn_source = r"\tilde{h}" if pre else "h"
    hidden = add(
        "ffn_hidden",
        "z",
        "Feed-forward: expand",
        rf"z = {ffn_source}\,W_1 + b_1 \in \mathbb{{R}}^{{{F}}}",
        ffn_in @ w1 + b1,
        f"The feed-forward net works on each token alone. It first expands the vector to {F} numbers with W_1 "
        f"({D}×{F}): each says how well the token matches one learned pattern.",
    )
    active = add(
        "ffn_activation",
        "g",
        f"Feed-forward: {activation.name}",
        rf"g = {activation.formula}",
        activation.function(hidden),
        f"{activation.name} {activation.effect}: the non-linearity that lets the net compute more than one "
        f"matrix product. {int((hidden > 0).sum())} of the {F} patterns matched (z > 0).",
        shown_with=("ffn_hidden",),
    )
    ffn_out = add(
        "ffn_output",
        "f",
        "Feed-forward: contract",
        rf"f = g\,W_2 + b_2 \in \mathbb{{R}}^{{{D}}}",
        active @ w2 + b2,
        f"W_2 ({F}×{D}) contracts the patterns back to the model's width: what the feed-forward net adds.",
    )
    last = layer == cfg.num_layers - 1
    onward = (
        "the encoder's output" + (" (before its final layer norm)" if pre else "")
        if last
        else (f"the input of layer {L + 1}")
    )
    if pre:
        add(
            "layer_output",
            "y",
            "Residual add: the layer's output",
            r"y = h + f",
            after + ffn_out,
            f"The feed-forward result is added to the stream: token {me} leaves layer {L} as {onward}.",
            shown_with=("after_attention", "ffn_output"),
        )
    else:
        add(
            "ffn_residual",
            "h + f",
            "Residual add",
            r"h + f",
            after + ffn_out,
            "The residual connection adds the feed-forward result to the stream.",
            shown_with=("after_attention", "ffn_output"),
        )
        add(
            "layer_output",
            "y",
            "Layer norm: the layer's output (post-LN)",
            r"y = \mathrm{LN}(h + f)",
            _layer_norm(params, f"{prefix}/ffn_norm", after + ffn_out, eps),
            f"Normalised once more (the feed-forward layer norm's own γ and β): token {me} leaves layer {L} as "
            f"{onward}.",
            shown_with=("ffn_residual",),
        )
    return LayerTrace(layer, head, position, tokens, causal, tuple(steps))
