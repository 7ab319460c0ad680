"""A part-of-speech probe: how linearly readable each word's part of speech is at every depth.

At every residual-stream snapshot, a linear classifier (multinomial logistic regression with L2 weight
decay) learns to read the universal tag of a token's word (``explorer.interpret.tagged_sentences``) from the
token's vector, on sentences of the Brown Corpus's training texts; it is scored on sentences of the
held-out texts. Against it stands a baseline that ignores context: the most frequent tag of the token id
in the probe's training tokens (the most frequent tag overall for an id it never saw). A snapshot whose
probe beats the baseline holds part-of-speech information that the token's identity alone does not give
("that" as a determiner or a conjunction, "play" as a noun or a verb).

Two probes per snapshot:

- **alone**: the snapshot's vector only. On a post-LN model this under-reads what the network knows:
  each sub-layer's output is added to the stream and the sum renormalised per token, so once a sub-layer
  writes much into it, the token's identity (which the baseline reads exactly) is mixed with context in
  a way one linear map does not undo. A linear map of the D-wide embedding cannot reproduce a lookup
  table over thousands of ids either, so even the embedding's probe can stay under the baseline.
- **given the embedding**: the snapshot's vector and the embedding snapshot side by side, a conditional
  probe (Hewitt et al., 2021, "Conditional probing: measuring usable information beyond a baseline").
  What it gains over the embedding's own probe is what the layers added about the token's context (a
  pre-LN stream is the embedding plus every sub-layer's output, so there the probe alone has that sum in
  its input already). It still sees no token id, and an untrained model's snapshots give it little to
  read.

The fit must take seconds, so it is small: a capped number of sentences, features standardised per
snapshot (so one learning rate suits every snapshot, pre-LN streams included), all probes fitted at
once in one jitted, full-batch Adam loop.

Glossary of shapes (as in ``explorer.model.encoder``): S residual-stream snapshots (2L+1), N training
tokens, M held-out tokens, T tokens of a sentence, D model width, C tags.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explorer.interpret import tagged_sentences
from explorer.interpret.analysis import softmax
from explorer.interpret.tagged_sentences import TaggedSentence
from explorer.model.bundle import ModelBundle
from explorer.model.encoder import hidden_state_names
from explorer.model.inference import InferenceEngine, run_in_batches
from explorer.text.brown import UNIVERSAL_TAGS

# ~1500 sentences (~36k tokens) fit in seconds and give each probe far more examples than its 2·D·C
# weights; 500 held-out sentences (10-17k tokens, by vocabulary) measure accuracy to within about a point.
TRAIN_SENTENCES = 1500
HELD_OUT_SENTENCES = 500
# Full-batch Adam on standardised features converges fast: on the default model, L-BFGS run to
# convergence on five times as many tokens read held-out accuracy less than a point higher, and twice as
# many Adam steps moved it by a few tenths, at twice the cost.
PROBE_STEPS = 60
LEARNING_RATE = 0.1
# L2 penalty on the weights: keeps a probe from memorising rare tokens' directions, so what it reads is
# a property of the snapshot rather than of the probe.
WEIGHT_DECAY = 1e-3
# Token counts are rounded up to a multiple of this (padding carries no weight), so models whose
# tokenizers give a few more or fewer tokens share one compiled fit.
TOKEN_BUCKET = 4096


@dataclass(frozen=True, eq=False)
class PosProbe:
    """Two fitted probes per snapshot (alone, and given the embedding), and how well each does on
    held-out sentences.

    Attributes:
      snapshot_names: ``[S]`` (``explorer.model.encoder.hidden_state_names``).
      tags: ``[C]`` the classes (``brown.UNIVERSAL_TAGS``).
      mean, scale: ``[S, D]`` the standardisation of each snapshot's features (from the training tokens).
      weights: ``[S, 2, D, C]`` (on the snapshot, then on the embedding: zero here); biases: ``[S, C]``:
        the probes of each snapshot alone, on standardised features.
      given_weights: ``[S, 2, D, C]``; given_biases: ``[S, C]``: the probes given the embedding. At the
        embedding itself it is the probe alone.
      accuracy: ``[S]`` held-out accuracy of each snapshot's probe alone.
      given_accuracy: ``[S]`` held-out accuracy of each snapshot's probe given the embedding.
      baseline_accuracy: held-out accuracy of the most frequent tag per token id.
      train_tokens, held_out_tokens: how many tagged tokens the fit and the score used.
    """

    snapshot_names: tuple[str, ...]
    tags: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    biases: np.ndarray
    given_weights: np.ndarray
    given_biases: np.ndarray
    accuracy: np.ndarray
    given_accuracy: np.ndarray
    baseline_accuracy: float
    train_tokens: int
    held_out_tokens: int

    def to_dict(self) -> dict:
        """The scores, JSON-ready (the classifiers themselves are left out)."""
        return {
            "snapshots": [
                {"name": name, "accuracy": float(a), "accuracy_given_embedding": float(g)}
                for name, a, g in zip(self.snapshot_names, self.accuracy, self.given_accuracy, strict=True)
            ],
            "baseline_accuracy": float(self.baseline_accuracy),
            "tags": list(self.tags),
            "train_tokens": int(self.train_tokens),
            "held_out_tokens": int(self.held_out_tokens),
        }


def baseline_predictions(
    train_ids: np.ndarray, train_labels: np.ndarray, ids: np.ndarray, num_classes: int
) -> np.ndarray:
    """The most frequent training label of each id in ``ids`` ``[M]``; the most frequent label overall for
    an id the training tokens never had. Ties go to the lower label index."""
    train_ids, train_labels, ids = (np.asarray(a, np.int64) for a in (train_ids, train_labels, ids))
    if len(train_ids) == 0:
        raise ValueError("The baseline needs training tokens; got none.")
    overall = int(np.bincount(train_labels, minlength=num_classes).argmax())
    known, index = np.unique(train_ids, return_inverse=True)  # [U], [N]
    counts = np.zeros((len(known), num_classes), np.int64)  # [U, C]
    np.add.at(counts, (index, train_labels), 1)
    majority = counts.argmax(axis=1)  # [U]
    position = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)  # [M]
    return np.where(known[position] == ids, majority[position], overall)  # [M]


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def _fit(
    features: jax.Array,  # [S, N, D] standardised
    labels: jax.Array,  # [N] int32
    present: jax.Array,  # [N] float32: 1 for a real token, 0 for padding
    num_classes: int,
    steps: int,
    learning_rate: float,
    weight_decay: float,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Full-batch Adam on every probe at once.

    Returns:
      ``([S, D, C] weights, [S, C] biases)`` of the probes alone, then ``([S - 1, 2, D, C] weights,
      [S - 1, C] biases)`` of the probes of snapshots 1.. given the embedding (the snapshot's weights,
      then the embedding's).
    """
    optimiser = optax.adam(learning_rate)
    count = jnp.maximum(present.sum(), 1.0)
    embedding = features[0]  # [N, D]

    def fit(logits_of, params):
        def loss(params):
            w, b = params
            losses = optax.softmax_cross_entropy_with_integer_labels(logits_of(w) + b, labels)  # [N]
            return (losses * present).sum() / count + 0.5 * weight_decay * jnp.sum(w**2)

        def step(_, carry):
            params, state = carry
            updates, state = optimiser.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, updates), state

        return jax.lax.fori_loop(0, steps, step, (params, optimiser.init(params)))[0]

    dims = features.shape[2]
    alone = jax.vmap(
        lambda x: fit(lambda w: x @ w, (jnp.zeros((dims, num_classes)), jnp.zeros(num_classes)))  # x: [N, D]
    )(features)
    given = jax.vmap(
        lambda x: fit(
            lambda w: x @ w[0] + embedding @ w[1],  # [N, C]
            (jnp.zeros((2, dims, num_classes)), jnp.zeros(num_classes)),
        )
    )(features[1:])
    return *alone, *given


def fit_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    train_ids: np.ndarray,
    held_out_features: np.ndarray,
    held_out_labels: np.ndarray,
    held_out_ids: np.ndarray,
    snapshot_names: Sequence[str],
    tags: Sequence[str] = UNIVERSAL_TAGS,
    steps: int = PROBE_STEPS,
    learning_rate: float = LEARNING_RATE,
    weight_decay: float = WEIGHT_DECAY,
) -> PosProbe:
    """Fits two probes per snapshot (alone, given the embedding snapshot 0) and scores them and the
    token-id baseline on the held-out tokens.

    Args:
      train_features: ``[S, N, D]``; train_labels: ``[N]`` indices into ``tags``; train_ids: ``[N]`` token ids.
      held_out_features: ``[S, M, D]``; held_out_labels, held_out_ids: ``[M]``.
      snapshot_names: ``[S]``; the first is the embedding the conditional probes are given.
    """
    train_features = np.asarray(train_features, np.float32)
    held_out_features = np.asarray(held_out_features, np.float32)
    snapshots, count, dims = train_features.shape
    if len(snapshot_names) != snapshots or held_out_features.shape[::2] != (snapshots, dims):
        raise ValueError(
            f"Training features {train_features.shape}, held-out features {held_out_features.shape} and "
            f"{len(snapshot_names)} snapshot names must agree on [S, ·, D]."
        )
    if not (count == len(train_labels) == len(train_ids)) or not (
        held_out_features.shape[1] == len(held_out_labels) == len(held_out_ids)
    ):
        raise ValueError("Every token needs one feature vector, one label and one id.")
    if count == 0 or len(held_out_labels) == 0:
        raise ValueError("The probe needs tagged tokens to train on and to score; got none.")
    mean = train_features.mean(axis=1)  # [S, D]
    scale = np.maximum(train_features.std(axis=1), 1e-6)  # [S, D] a dimension that never moves stays 0
    padded = -(-count // TOKEN_BUCKET) * TOKEN_BUCKET
    standardised = np.zeros((snapshots, padded, dims), np.float32)  # [S, N', D]
    standardised[:, :count] = (train_features - mean[:, None]) / scale[:, None]
    labels = np.zeros(padded, np.int32)  # [N']
    labels[:count] = train_labels
    present = (np.arange(padded) < count).astype(np.float32)  # [N']
    alone_weights, alone_biases, given_weights, given_biases = jax.device_get(
        _fit(standardised, labels, present, len(tags), steps, float(learning_rate), float(weight_decay))
    )
    # Every probe as ([S, 2, D, C], [S, C]) weights on the snapshot and on the embedding: a probe alone
    # has zero embedding weights, and the embedding has no probe given itself (its probe alone stands in).
    weights = np.stack([alone_weights, np.zeros_like(alone_weights)], axis=1)  # [S, 2, D, C]
    given_weights = np.concatenate([weights[:1], given_weights])  # [S, 2, D, C]
    given_biases = np.concatenate([alone_biases[:1], given_biases])  # [S, C]
    held_out = (held_out_features - mean[:, None]) / scale[:, None]  # [S, M, D]
    held_out_labels = np.asarray(held_out_labels)
    predicted = np.stack(
        [
            [_logits(held_out, s, w[s], b[s]).argmax(-1) for s in range(snapshots)]
            for w, b in ((weights, alone_biases), (given_weights, given_biases))
        ]
    )  # [2, S, M]: alone, given the embedding
    accuracy, given_accuracy = (predicted == held_out_labels).mean(axis=-1)  # [S], [S]
    baseline = baseline_predictions(train_ids, train_labels, held_out_ids, len(tags))  # [M]
    return PosProbe(
        snapshot_names=tuple(snapshot_names),
        tags=tuple(tags),
        mean=mean,
        scale=scale,
        weights=weights,
        biases=np.asarray(alone_biases),
        given_weights=given_weights,
        given_biases=given_biases,
        accuracy=accuracy,
        given_accuracy=given_accuracy,
        baseline_accuracy=float((baseline == held_out_labels).mean()),
        train_tokens=int(count),
        held_out_tokens=int(len(held_out_labels)),
    )


def _logits(standardised: np.ndarray, snapshot: int, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """One probe's logits ``[M, C]``: standardised features ``[S, M, D]``, its weights ``[2, D, C]`` on the
    snapshot and on the embedding (zero for a probe alone), its biases ``[C]``."""
    return standardised[snapshot] @ weights[0] + standardised[0] @ weights[1] + biases


def tagged_features(
    bundle: ModelBundle,
    engine: InferenceEngine,
    sentences: Sequence[TaggedSentence],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every snapshot's vector of every tagged token of ``sentences`` (``progress(done, total)`` hears every
    ``tagged_sentences.PROGRESS_EVERY`` sentences).

    Returns:
      ``(features [S, N, D], labels [N] indices into UNIVERSAL_TAGS, ids [N] model ids)``; tokens of only
      whitespace (no word) are left out.
    """
    if not sentences:
        raise ValueError("There are no sentences to read features from.")
    index_of = {tag: i for i, tag in enumerate(UNIVERSAL_TAGS)}
    features: list[np.ndarray] = [np.empty(0)] * len(sentences)
    runs = run_in_batches(engine, bundle.params, [s.model_ids for s in sentences], causal=bundle.task == "causal")
    for done, (index, result) in enumerate(runs, start=1):
        keep = np.array([tag is not None for tag in sentences[index].tags])  # [T]
        features[index] = result.hidden_states[:, keep]  # [S, T', D], a copy (boolean index)
        if progress is not None and (done % tagged_sentences.PROGRESS_EVERY == 0 or done == len(sentences)):
            progress(done, len(sentences))
    labels = [index_of[t] for s in sentences for t in s.tags if t is not None]
    ids = [int(i) for s in sentences for i, t in zip(s.model_ids, s.tags, strict=True) if t is not None]
    return np.concatenate(features, axis=1), np.asarray(labels, np.int32), np.asarray(ids, np.int64)


def probe_bundle(
    bundle: ModelBundle,
    engine: InferenceEngine,
    train_sentences: int = TRAIN_SENTENCES,
    held_out_sentences: int = HELD_OUT_SENTENCES,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> PosProbe:
    """Fits and scores the probe of one model on Brown sentences (the app computes this once per model).

    ``progress(fraction, stage)`` hears how far it is (fractions rising to 1.0, a sentence per stage), for
    a progress bar: the first fit takes from seconds to a minute.

    Raises ``brown.CorpusMissing`` when the corpus is not on this machine.
    """
    if engine.config != bundle.config:
        raise ValueError("The engine was compiled for another model configuration.")
    report = progress or (lambda fraction, stage: None)

    def stage(low: float, high: float, what: str) -> Callable[[int, int], None]:
        return lambda done, total: report(low + (high - low) * done / max(total, 1), f"{what}: {done:,} of {total:,}")

    report(0.0, "Reading the tagged Brown Corpus")
    train = tagged_sentences.sample_sentences(
        bundle.vocab, train_sentences, False, seed, stage(0.02, 0.25, "Tokenizing training sentences")
    )
    held_out = tagged_sentences.sample_sentences(
        bundle.vocab, held_out_sentences, True, seed, stage(0.25, 0.33, "Tokenizing held-out sentences")
    )
    features = tagged_features(bundle, engine, train, stage(0.33, 0.7, "Running the model over training sentences"))
    held_out_features = tagged_features(
        bundle, engine, held_out, stage(0.7, 0.82, "Running the model over held-out sentences")
    )
    report(0.82, f"Fitting a probe at each of {len(hidden_state_names(bundle.config))} depths")
    probe = fit_probe(*features, *held_out_features, snapshot_names=hidden_state_names(bundle.config))
    report(1.0, "Done")
    return probe


def untagged(pieces: Sequence[str], special: np.ndarray) -> np.ndarray:
    """``[T]`` True for the tokens the probe gives no tag, as none was given in its training
    (``tagged_sentences``): tokens the tokenizer added (``special``: ``[CLS]``, ``[SEP]``, no word of the
    text) and tokens of only whitespace."""
    special = np.asarray(special, bool)
    if special.shape != (len(pieces),):
        raise ValueError(f"{len(pieces)} tokens but {special.shape} special flags; give one per token.")
    return special | np.array([not piece.strip() for piece in pieces], dtype=bool)


def tag_tokens(
    probe: PosProbe,
    hidden_states: np.ndarray,
    snapshot: int,
    given_embedding: bool = True,
    skip: np.ndarray | None = None,
) -> tuple[list[str | None], np.ndarray]:
    """The probe's tag for every token of one sentence at one snapshot.

    Args:
      hidden_states: ``[S, T, D]`` (an ``Inspection``'s ``hidden_states``).
      snapshot: which residual-stream snapshot to read.
      given_embedding: read it with the probe given the embedding (else the probe of the snapshot alone).
      skip: ``[T]`` True for tokens left untagged (``untagged``): their tag is None, their probability NaN.

    Returns:
      ``(tags [T], probabilities [T] of those tags)``.
    """
    hidden = np.asarray(hidden_states, np.float64)
    if hidden.ndim != 3 or hidden.shape[0] != len(probe.snapshot_names) or hidden.shape[2] != probe.mean.shape[1]:
        raise ValueError(
            f"Hidden states {hidden.shape} do not fit this probe ([{len(probe.snapshot_names)}, T, "
            f"{probe.mean.shape[1]}]): fit the probe on the same model."
        )
    if not 0 <= snapshot < hidden.shape[0]:
        raise ValueError(f"There are {hidden.shape[0]} snapshots; snapshot {snapshot} does not exist.")
    standardised = (hidden - probe.mean[:, None]) / probe.scale[:, None]  # [S, T, D]
    weights, biases = (probe.given_weights, probe.given_biases) if given_embedding else (probe.weights, probe.biases)
    probabilities = softmax(_logits(standardised, snapshot, weights[snapshot], biases[snapshot]))  # [T, C]
    best = probabilities.argmax(axis=-1)  # [T]
    confidence = probabilities[np.arange(len(best)), best]  # [T]
    if skip is None:
        return [probe.tags[i] for i in best], confidence
    skip = np.asarray(skip, bool)
    if skip.shape != best.shape:
        raise ValueError(f"{len(best)} tokens but {skip.shape} skip flags; give one per token.")
    tags = [None if s else probe.tags[i] for i, s in zip(best, skip, strict=True)]
    return tags, np.where(skip, np.nan, confidence)
