"""The part-of-speech probe: its token-id baseline against a plain count, what it can and cannot read from
features, tagging one sentence, and the default model against the token-id baseline and an untrained
model."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from explorer.interpret import pos_probe
from explorer.model import checkpoint
from explorer.model.bundle import ModelBundle
from explorer.model.inference import InferenceEngine
from explorer.text import brown

TAGS = brown.UNIVERSAL_TAGS
NAMES = ["embedding + position", "layer 1 · after attention", "layer 1 · after feed-forward"]


def test_baseline_is_the_most_frequent_training_tag_of_each_id():
    rng = np.random.default_rng(0)
    train_ids, train_labels = rng.integers(0, 30, 500), rng.integers(0, 5, 500)
    ids = rng.integers(0, 40, 200)  # ids 30..39 were never seen
    counts: dict[int, Counter] = {}
    for token, label in zip(train_ids, train_labels, strict=True):
        counts.setdefault(int(token), Counter())[int(label)] += 1
    overall = Counter(train_labels.tolist()).most_common()
    fallback = min(label for label, n in overall if n == overall[0][1])
    expected = [
        min(label for label, n in counts[t].items() if n == max(counts[t].values())) if t in counts else fallback
        for t in ids.tolist()
    ]
    np.testing.assert_array_equal(pos_probe.baseline_predictions(train_ids, train_labels, ids, 5), expected)


def synthetic(count: int, seed: int, informative: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens whose tag is mostly fixed by their id (one in five is the tag of the "context") and
    features that either encode the true tag (informative) or are noise."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 100, count)
    labels = ids % len(TAGS)
    contextual = rng.random(count) < 0.2
    labels = np.where(contextual, rng.integers(0, len(TAGS), count), labels)
    features = rng.normal(size=(3, count, 16)).astype(np.float32)
    if informative:
        features[1:, :, : len(TAGS)] += 4.0 * np.eye(len(TAGS))[labels]  # snapshots 1 and 2 know the tag
    return features, labels, ids


def test_a_probe_on_random_features_does_not_beat_the_baseline():
    probe = pos_probe.fit_probe(*synthetic(4000, 0, False), *synthetic(1000, 1, False), snapshot_names=NAMES)
    assert probe.baseline_accuracy > 0.8
    for accuracy in (probe.accuracy, probe.given_accuracy):
        assert np.all(accuracy < probe.baseline_accuracy)
        assert np.all(accuracy < 0.2)  # about the most frequent tag's share: nothing to read


def test_a_probe_reads_what_the_features_hold_and_tags_like_its_score():
    train, held_out = synthetic(4000, 0, True), synthetic(1000, 1, True)
    probe = pos_probe.fit_probe(*train, *held_out, snapshot_names=NAMES)
    assert probe.accuracy[0] < probe.baseline_accuracy < min(probe.accuracy[1:])
    assert probe.given_accuracy[0] == probe.accuracy[0]  # the embedding's probe given itself is its probe
    assert probe.baseline_accuracy < min(probe.given_accuracy[1:])
    assert probe.train_tokens == 4000 and probe.held_out_tokens == 1000
    summary = probe.to_dict()
    assert json.loads(json.dumps(summary)) == summary and summary["snapshots"][1]["name"] == NAMES[1]
    # Tagging the held-out tokens one "sentence" at a time gives the accuracy the probe reported.
    features, labels, _ = held_out
    for given, reported in ((False, probe.accuracy), (True, probe.given_accuracy)):
        for snapshot in range(3):
            tags, confidence = pos_probe.tag_tokens(probe, features, snapshot, given_embedding=given)
            correct = np.mean([tag == TAGS[label] for tag, label in zip(tags, labels, strict=True)])
            assert correct == pytest.approx(reported[snapshot])
            assert np.all((confidence > 1 / len(TAGS) - 1e-9) & (confidence <= 1.0))
    # Tokens the probe never saw tagged in training (added by the tokenizer, only whitespace) get no tag.
    skip = pos_probe.untagged(["[CLS]", "the", " ", "cat", "[SEP]"], np.array([True, False, False, False, True]))
    assert skip.tolist() == [True, False, True, False, True]
    tags, confidence = pos_probe.tag_tokens(probe, features[:, :5], 1, skip=skip)
    full_tags, full_confidence = pos_probe.tag_tokens(probe, features[:, :5], 1)
    assert tags == [None, full_tags[1], None, full_tags[3], None]
    assert np.isnan(confidence[[0, 2, 4]]).all() and np.array_equal(confidence[[1, 3]], full_confidence[[1, 3]])
    with pytest.raises(ValueError, match="one per token"):
        pos_probe.tag_tokens(probe, features[:, :5], 1, skip=skip[:3])
    with pytest.raises(ValueError, match="fit the probe on the same model"):
        pos_probe.tag_tokens(probe, features[:, :, :8], 0)
    with pytest.raises(ValueError, match="does not exist"):
        pos_probe.tag_tokens(probe, features, 3)


def test_given_the_embedding_a_probe_reads_what_neither_snapshot_holds_alone():
    """The tag is the sum of two parts, one in the embedding and one in snapshot 2: neither snapshot's
    probe alone reads it, the probe given the embedding does (as a post-LN stream splits identity and
    context)."""
    rng = np.random.default_rng(0)

    def split(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = rng.integers(0, 4, count)
        context = rng.integers(0, 3, count)
        labels = ids * 3 + context  # 12 tags
        features = rng.normal(size=(3, count, 8)).astype(np.float32)
        features[0, :, :4] += 4.0 * np.eye(4)[ids]
        features[2, :, :3] += 4.0 * np.eye(3)[context]
        return features, labels, ids

    probe = pos_probe.fit_probe(*split(4000), *split(1000), snapshot_names=NAMES)
    assert probe.baseline_accuracy < 0.4 and probe.accuracy.max() < 0.4  # a third of the tags each
    assert probe.given_accuracy[2] > 0.9
    assert probe.given_accuracy[1] < 0.4  # snapshot 1 is noise: given the embedding adds nothing


def test_probe_inputs_are_checked():
    features, labels, ids = synthetic(50, 0, False)
    with pytest.raises(ValueError, match="one feature vector, one label and one id"):
        pos_probe.fit_probe(features, labels[:10], ids, features, labels, ids, snapshot_names=NAMES)
    with pytest.raises(ValueError, match="snapshot names"):
        pos_probe.fit_probe(features, labels, ids, features, labels, ids, snapshot_names=NAMES[:2])


def _default_english_model() -> ModelBundle:
    from explorer import DEFAULT_CHECKPOINT

    if not brown.available():
        pytest.skip("the Brown Corpus is not on this machine (make corpus)")
    try:
        bundle = checkpoint.load(DEFAULT_CHECKPOINT)
    except checkpoint.CheckpointError as error:
        pytest.skip(f"no default checkpoint: {error}")
    if not bundle.vocab.closed:
        pytest.skip("the default checkpoint predates the English model (its vocabulary is not closed)")
    return bundle


@pytest.mark.slow
def test_the_default_model_beats_the_token_id_baseline_and_an_untrained_model_does_not():
    """Held-out Brown sentences, fixed seeds: given the embedding, some snapshot of the English default
    model reads part of speech better than the most frequent tag of the token id; an untrained model's
    snapshots, read the same way, do not come near it.

    The probes of a snapshot alone stay under the baseline on this post-LN model (``explorer.interpret.pos_probe``
    says why), so they are not what this test asks of it.
    """
    bundle = _default_english_model()
    engine = InferenceEngine(bundle.config)
    heard: list[tuple[float, str]] = []
    trained = pos_probe.probe_bundle(bundle, engine, progress=lambda fraction, stage: heard.append((fraction, stage)))
    fractions = [fraction for fraction, _ in heard]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0  # a bar that only rises
    assert len(heard) > 20 and any("1,500 of 1,500" in stage for _, stage in heard)
    untrained = pos_probe.probe_bundle(ModelBundle.random(bundle.config, bundle.vocab), engine)
    assert trained.baseline_accuracy == untrained.baseline_accuracy  # same sentences, same tokens
    assert trained.held_out_tokens > 10_000
    # Over 10k held-out tokens a point is ~3 standard errors of either accuracy; the gap seen is ~2.5.
    assert trained.given_accuracy.max() > trained.baseline_accuracy + 0.01
    assert max(untrained.accuracy.max(), untrained.given_accuracy.max()) < untrained.baseline_accuracy - 0.05
    assert trained.given_accuracy.max() > untrained.given_accuracy.max() + 0.05
