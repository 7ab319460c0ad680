"""The command line: JSON shape, attention invariants in the JSON, and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def cli(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "explorer", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def inspected():
    result = cli("inspect", "The keys that the girl found are red. 🙂 <|endoftext|>", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_json_shape(inspected):
    payload = inspected
    for key in ("tokens", "ids", "attention", "layer_norm", "config", "model", "unknown", "notices"):
        assert key in payload
    tokens, config = payload["tokens"], payload["config"]
    T, L, H = len(tokens), config["num_layers"], config["num_heads"]
    assert len(payload["ids"]) == len(payload["model_ids"]) == T and T > 10
    # ids are cl100k_base ids (every model token is one), model_ids the embedding rows, nothing unknown
    from explorer.text.tokenizer import Tokenizer

    assert Tokenizer(payload["encoding"]).decode(payload["ids"]) == payload["text"]
    assert payload["unknown"] == [False] * T
    attention = np.asarray(payload["attention"])
    assert attention.shape == (L, H, T, T)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-4)
    assert "".join(tokens).endswith("<|endoftext|>")  # special-token text stays text
    n_norms = 2 * L + (1 if config["layer_norm"] == "pre" else 0)
    assert len(payload["layer_norm"]) == n_norms
    for entry in payload["layer_norm"]:
        assert len(entry["input_mean"]) == len(entry["output_std"]) == T
        if config["layer_norm"] == "post":
            np.testing.assert_allclose(entry["output_mean"], 0.0, atol=0.3)  # unless the learned offset moved it


def test_inspect_predictions_follow_the_task(inspected):
    if inspected["model"]["task"] is None:
        assert inspected["predictions"] is None
        return
    assert len(inspected["predictions"]) == len(inspected["tokens"])
    for row in inspected["predictions"]:
        probabilities = [entry["probability"] for entry in row]
        assert probabilities == sorted(probabilities, reverse=True) and 0 <= sum(probabilities) <= 1 + 1e-6
    if inspected["model"]["task"] == "mlm":
        assert "[MASK]" in inspected["predictions_meaning"]


def test_mlm_predictions_mask_each_position():
    from explorer.model import checkpoint
    from explorer.model.inference import InferenceEngine
    from explorer.pipeline import position_predictions, run_text
    from explorer.text.vocab import MASK

    bundle, _ = checkpoint.load_default()
    assert bundle.task == "mlm", "the default model is a masked-token model"
    engine = InferenceEngine(bundle.config)
    run = run_text(bundle, engine, "Mary met John. She gave him a book.")
    _, predictions = position_predictions(bundle, engine, run.model_ids, k=1)
    for position in (0, 5, len(run.model_ids) - 1):  # batch edges and a middle position
        masked = run.model_ids.copy()
        masked[position] = MASK
        logits = engine.run(bundle.params, masked).logits[position]
        token, _ = predictions[position][0]
        assert token == bundle.vocab.token_text(int(np.argmax(logits)))


def test_inspect_table(tmp_path):
    result = cli("inspect", "Mary met [MASK].")
    assert result.returncode == 0, result.stderr
    assert "tokens" in result.stdout and "L1 H1" in result.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("inspect", ""), "empty"),
        (("inspect", "   "), "whitespace"),
        (("inspect", "hi", "--checkpoint", "/nonexistent.npz"), "Cannot read"),
        (("inspect", "hi", "--encoding", "klingon"), "klingon"),
        (("predict", "The cat sat on the mat."), "[MASK]"),
        (("predict", "The cat sat on the [MASK].", "--top", "0"), "--top"),
        (("predict", ""), "empty"),
        (("inspect",), "required"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_errors_are_one_line(args, fragment, capsys):
    # In-process (each subprocess would pay for importing JAX again); the subprocess tests above cover
    # the real entry point.
    from explorer.cli.main import main

    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], captured.err


def test_foreign_checkpoint_rejected(tmp_path):
    foreign = tmp_path / "weights.npz"
    np.savez(foreign, w=np.ones(3))
    result = cli("inspect", "hi", "--checkpoint", str(foreign))
    assert result.returncode == 2 and "not saved by this app" in result.stderr


def test_predict_json_fills_every_mask():
    result = cli("predict", "She opened the [MASK] and walked into the [MASK].", "--top", "5", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    masks = payload["masks"]
    assert [m["position"] for m in masks] == sorted(m["position"] for m in masks) and len(masks) == 2
    for mask in masks:
        probabilities = [p["probability"] for p in mask["predictions"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
        assert all(isinstance(p["token"], str) for p in mask["predictions"]) and sum(probabilities) <= 1 + 1e-6


def test_predict_without_a_mask_exits_2_with_one_line_on_how_to_use_it():
    result = cli("predict", "The cat sat on the mat.")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "[MASK]" in lines[0] and "e.g." in lines[0]


def test_inspect_json_carries_rollout_logit_lens_and_head_roles(inspected):
    config = inspected["config"]
    T, L, H = len(inspected["tokens"]), config["num_layers"], config["num_heads"]
    attention = np.asarray(inspected["attention"], np.float64)
    # Rollout recomputed here from the returned attention (Abnar & Zuidema): mean over heads, half identity,
    # rows renormalised, multiplied from the first layer up.
    expected = np.eye(T)
    for layer in range(L):
        mixed = 0.5 * attention[layer].mean(0) + 0.5 * np.eye(T)
        expected = (mixed / mixed.sum(-1, keepdims=True)) @ expected
    np.testing.assert_allclose(inspected["attention_rollout"], expected, atol=1e-4)
    lens = inspected["logit_lens"]
    assert len(lens) == 2 * L + 1 and all(len(row) == T for row in lens)
    assert all(0 <= cell["probability"] <= 1 and isinstance(cell["token"], str) for row in lens for cell in row)
    roles = inspected["head_roles"]
    assert len(roles) == L and all(len(row) == H for row in roles)
    assert all(isinstance(cell["role"], str) and 0 <= cell["score"] <= 1 for row in roles for cell in row)
