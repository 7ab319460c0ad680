"""Head roles: an automatic label and a score for every attention head, from its attention over sentences.

Many heads of small trained encoders do one recognisable thing (Clark et al. 2019, "What Does BERT Look
At?"): look at the previous or the next token, at themselves, at the first token (an "attention sink":
a place to put weight when nothing else matters), at punctuation, at an earlier copy of their own token
(the first half of an induction circuit), or everywhere at once. Each role has a score in [0, 1], the
average over queries of:

  previous token   the weight on key i-1 (queries i >= 1)
  next token       the weight on key i+1 (queries i <= T-2)
  self             the weight on key i
  first token      the weight on key 0 (queries i >= 1, so that it is not "self")
  punctuation      the weight on punctuation keys other than the query itself (sentences that have one)
  same token       the weight on earlier keys with the query's own token id (queries that have one)
  broad            the entropy of the query's weights over the keys it may see, divided by its maximum

A head is labelled with its highest-scoring pattern role (the first six) when that score reaches
``ROLE_THRESHOLD``, else "broad" when its broad score reaches ``BROAD_THRESHOLD``, else "none".

Glossary of shapes (as in ``explorer.model.encoder``): L layers, H heads, T tokens, R roles.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from explorer.interpret import tagged_sentences
from explorer.model.bundle import ModelBundle
from explorer.model.inference import InferenceEngine, run_in_batches

PATTERN_ROLES = ("previous token", "next token", "self", "first token", "punctuation", "same token")
BROAD = "broad"
NONE = "none"
ROLES = (*PATTERN_ROLES, BROAD)
_PREVIOUS, _NEXT, _SELF, _FIRST, _PUNCTUATION, _SAME, _BROAD = range(len(ROLES))  # rows of a [R, L, H] array
# A pattern role needs, on average, 40% of a query's weight on its keys. Uniform attention over a Brown
# sentence (~35 tokens) puts ~3% on any one key, so 40% is far from chance, yet a head that splits its
# weight between its target and a sink (common in trained models) still qualifies.
ROLE_THRESHOLD = 0.4
# "Broad" needs at least 80% of the largest possible entropy: close to uniform over the keys it can see.
BROAD_THRESHOLD = 0.8
# "Same token" is scored only when this many queries have an earlier copy of their token: a score from a
# handful of repeated tokens would label a head by chance.
MIN_SAME_TOKEN_QUERIES = 10
# Held-out sentences the app measures roles over: enough for "same token" to have a few hundred repeated
# tokens, few enough to run in a fraction of a second.
DEFAULT_SENTENCES = 64
BADGES = {
    "previous token": "← prev",
    "next token": "→ next",
    "self": "● self",
    "first token": "⇤ first",
    "punctuation": "❟ punct",
    "same token": "= same",
    BROAD: "≈ broad",
    NONE: "·",
}


def role_badge(role: str) -> str:
    """A short label for a head's role, to show next to its name (``"L1 H2 ← prev"``)."""
    if role not in BADGES:
        raise ValueError(f"Unknown head role {role!r}; roles are {(*ROLES, NONE)}.")
    return BADGES[role]


def is_punctuation(piece: str) -> bool:
    """True for a token of punctuation (spaces aside): ``","``, ``" ."``, ``'."'``."""
    text = piece.strip()
    return bool(text) and all(unicodedata.category(char).startswith("P") for char in text)


def _sentence_sums(
    weights: np.ndarray, ids: np.ndarray, punctuation: np.ndarray, causal: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per role, the sum of the per-query scores of one sentence and the number of queries scored.

    Args:
      weights: ``[L, H, T, T]`` attention of one sentence.
      ids: ``[T]`` token ids; punctuation: ``[T]`` bool.
      causal: query i sees keys 0..i only (else all T).

    Returns:
      ``([R, L, H] sums, [R] counts)``.
    """
    length = weights.shape[-1]
    positions = np.arange(length)
    sums = np.zeros((len(ROLES),) + weights.shape[:2])  # [R, L, H]
    counts = np.zeros(len(ROLES))  # [R]
    if length > 1:
        sums[_PREVIOUS] = np.diagonal(weights, offset=-1, axis1=-2, axis2=-1).sum(-1)  # [L, H] weight on key i-1
        sums[_NEXT] = np.diagonal(weights, offset=1, axis1=-2, axis2=-1).sum(-1)  # [L, H] weight on key i+1
        sums[_FIRST] = weights[..., 1:, 0].sum(-1)  # [L, H] weight of queries 1.. on key 0
        counts[[_PREVIOUS, _NEXT, _FIRST]] = length - 1
    sums[_SELF] = np.diagonal(weights, axis1=-2, axis2=-1).sum(-1)  # [L, H]
    counts[_SELF] = length
    others = punctuation[None, :] & (positions[:, None] != positions[None, :])  # [T, T] punctuation keys but self
    has_punctuation = others.any(axis=1)  # [T]
    sums[_PUNCTUATION] = (weights * others).sum(-1)[..., has_punctuation].sum(-1)  # [L, H]
    counts[_PUNCTUATION] = has_punctuation.sum()
    earlier_copy = (ids[:, None] == ids[None, :]) & (positions[None, :] < positions[:, None])  # [T, T]
    repeated = earlier_copy.any(axis=1)  # [T]
    sums[_SAME] = (weights * earlier_copy).sum(-1)[..., repeated].sum(-1)  # [L, H]
    counts[_SAME] = repeated.sum()
    # The keys a query may see come from the mask, not from weights > 0: a sharp head's weights can
    # underflow to 0, and counting only the rest would make two sharp peaks look uniform.
    visible = positions + 1 if causal else np.full(length, length)  # [T]
    scored = visible > 1  # [T] queries with more than one key to choose from
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(weights > 0, weights * np.log(weights), 0.0).sum(-1)  # [L, H, T] nats
    spread = entropy[..., scored] / np.log(visible[scored])  # [L, H, Q] in [0, 1]
    sums[_BROAD] = spread.sum(-1)  # [L, H]
    counts[_BROAD] = scored.sum()
    return sums, counts


def role_scores(
    attentions: Sequence[np.ndarray],
    token_ids: Sequence[Sequence[int]],
    pieces: Sequence[Sequence[str]],
    causal: bool = False,
) -> np.ndarray:
    """Every role's score for every head over a set of sentences.

    Args:
      attentions: per sentence ``[L, H, T, T]`` attention weights (T may differ between sentences).
      token_ids: per sentence ``[T]`` token ids (for "same token").
      pieces: per sentence ``[T]`` token texts (for "punctuation").
      causal: the attention was computed with a causal mask (query i sees keys 0..i), for "broad".

    Returns:
      ``[R, L, H]`` scores in [0, 1], in the order of ``ROLES``; 0 for a role no query could show.
    """
    if not attentions:
        raise ValueError("Head roles need the attention of at least one sentence.")
    if not len(attentions) == len(token_ids) == len(pieces):
        raise ValueError(
            f"{len(attentions)} attention arrays, {len(token_ids)} id lists and {len(pieces)} token lists: "
            f"pass one of each per sentence."
        )
    shape = np.shape(attentions[0])[:2]
    total = np.zeros((len(ROLES),) + shape)  # [R, L, H]
    counts = np.zeros(len(ROLES))  # [R]
    for weights, ids, texts in zip(attentions, token_ids, pieces, strict=True):
        weights = np.asarray(weights, np.float64)
        if weights.ndim != 4 or weights.shape[:2] != shape or weights.shape[2] != weights.shape[3]:
            raise ValueError(
                f"Every sentence's attention must be [L, H, T, T] with {shape} heads; got {weights.shape}."
            )
        if not weights.shape[-1] == len(ids) == len(texts):
            raise ValueError(
                f"Attention over {weights.shape[-1]} tokens but {len(ids)} ids and {len(texts)} token texts; "
                f"pass the tokens of the same sentence."
            )
        punctuation = np.array([is_punctuation(p) for p in texts], bool)  # [T]
        sums, scored = _sentence_sums(weights, np.asarray(ids), punctuation, causal)
        total += sums
        counts += scored
    scores = total / np.maximum(counts, 1)[:, None, None]  # [R, L, H]
    if counts[_SAME] < MIN_SAME_TOKEN_QUERIES:
        scores[_SAME] = 0.0
    return np.clip(scores, 0.0, 1.0)


def label_heads(scores: np.ndarray) -> list[list[dict]]:
    """Each head's role from its ``[R, L, H]`` scores (see the module docstring for the rule).

    Returns:
      per ``[L][H]``: ``{"role": str, "score": float, "scores": {role: float}}``, JSON-ready; ``score`` is
      the labelled role's score, or for "none" the highest score any role reached.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 3 or scores.shape[0] != len(ROLES):
        raise ValueError(f"Expected role scores of shape [{len(ROLES)}, L, H], got {scores.shape}.")
    out = []
    for layer in range(scores.shape[1]):
        row = []
        for head in range(scores.shape[2]):
            own = scores[:, layer, head]  # [R]
            best = int(np.argmax(own[:_BROAD]))
            if own[best] >= ROLE_THRESHOLD:
                role, score = PATTERN_ROLES[best], own[best]
            elif own[_BROAD] >= BROAD_THRESHOLD:
                role, score = BROAD, own[_BROAD]
            else:
                role, score = NONE, own.max()
            row.append(
                {
                    "role": role,
                    "score": float(score),
                    "scores": {name: float(value) for name, value in zip(ROLES, own, strict=True)},
                }
            )
        out.append(row)
    return out


def head_roles(
    attentions: Sequence[np.ndarray],
    token_ids: Sequence[Sequence[int]],
    pieces: Sequence[Sequence[str]],
    causal: bool = False,
) -> list[list[dict]]:
    """``label_heads(role_scores(...))``: every head's role and score over a set of sentences."""
    return label_heads(role_scores(attentions, token_ids, pieces, causal))


def bundle_head_roles(
    bundle: ModelBundle, engine: InferenceEngine, count: int = DEFAULT_SENTENCES, seed: int = 0
) -> list[list[dict]]:
    """Head roles of a model over ``count`` held-out Brown sentences (the app caches this per model).

    A causal model is run with its causal mask, as it was trained. Raises ``brown.CorpusMissing`` when the
    corpus is not on this machine.
    """
    if engine.config != bundle.config:
        raise ValueError("The engine was compiled for another model configuration.")
    causal = bundle.task == "causal"
    sentences = tagged_sentences.sample_sentences(bundle.vocab, count, held_out=True, seed=seed)
    # A model with a short maximum length (a small pretrained one) reads only the sentences that fit it.
    sentences = [s for s in sentences if len(s.model_ids) <= bundle.config.max_len]
    attentions: list[np.ndarray] = [np.empty(0)] * len(sentences)
    runs = run_in_batches(engine, bundle.params, [s.model_ids for s in sentences], causal=causal)
    for index, result in runs:
        attentions[index] = np.array(result.attention_weights)  # [L, H, T, T], copied out of the batch
    # Model ids, not tiktoken ids: for a model whose vocabulary is not closed, [UNK] copies are copies too.
    return head_roles(attentions, [s.model_ids for s in sentences], [s.tokens.pieces for s in sentences], causal)


def scores_over_snapshots(per_snapshot: Sequence[list[list[dict]]], role: str | None = None) -> np.ndarray:
    """``[S, L, H]`` scores from the head roles of ``S`` training snapshots, for a role timeline.

    ``role`` None follows each head's role at the last snapshot (its own role, as it forms); otherwise
    every head's score for ``role``.
    """
    if not per_snapshot:
        raise ValueError("There are no snapshots to follow.")
    if role is not None and role not in ROLES:
        raise ValueError(f"Unknown head role {role!r}; roles are {ROLES}.")
    last = per_snapshot[-1]

    def followed(layer: int, head: int) -> str:
        if role is not None:
            return role
        own = last[layer][head]
        return own["role"] if own["role"] != NONE else max(own["scores"], key=own["scores"].get)

    return np.array(
        [
            [[roles[ly][h]["scores"][followed(ly, h)] for h in range(len(last[ly]))] for ly in range(len(last))]
            for roles in per_snapshot
        ]
    )


def roles_over_training(
    attentions: Sequence[np.ndarray], token_ids: Sequence[int], pieces: Sequence[str], causal: bool = False
) -> list[list[list[dict]]]:
    """The head roles at each of ``S`` training snapshots, from each snapshot's attention ``[L, H, T, T]``
    on one fixed probe input (its ``token_ids`` and ``pieces``): cheap enough to follow a live run, and
    enough to see the step where a head settles into its pattern. Feed to ``scores_over_snapshots``."""
    return [head_roles([attention], [token_ids], [pieces], causal) for attention in attentions]
