"""The command line: JSON shape, attention invariants in the JSON, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


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
    assert len(payload["ids"]) == T and T > 10
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


def test_inspect_table(tmp_path):
    result = cli("inspect", "Mary met John.")
    assert result.returncode == 0, result.stderr
    assert "tokens" in result.stdout and "L1 H1" in result.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("inspect", ""), "empty"),
        (("inspect", "   "), None),
        (("inspect", "hi", "--checkpoint", "/nonexistent.npz"), "Cannot read"),
        (("inspect", "hi", "--encoding", "klingon"), "Unknown encoding"),
        (("inspect",), "required"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_errors_are_one_line(args, fragment, capsys):
    # In-process (each subprocess would pay for importing JAX again); the subprocess tests above cover
    # the real entry point.
    from explorer.cli import main

    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    if fragment is None:  # whitespace is real text (tokens of spaces): it must simply work
        assert code == 0, captured.err
        return
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], captured.err


def test_foreign_checkpoint_rejected(tmp_path):
    foreign = tmp_path / "weights.npz"
    np.savez(foreign, w=np.ones(3))
    result = cli("inspect", "hi", "--checkpoint", str(foreign))
    assert result.returncode == 2 and "not saved by this app" in result.stderr
