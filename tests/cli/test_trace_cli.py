"""`python -m explorer trace`: its JSON agrees with `inspect --json` on the shipped model, on MiniLM and on a
tiny RoBERTa folder (position offset, byte-level BPE, GELU's tanh form), its steps follow from each other by
their formulas, and out-of-range choices exit 2 with one line."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from explorer.cli.main import main
from explorer.interpret.activations import ACTIVATIONS
from tests.conftest import ROOT

TEXT = "She opened the door and walked into the room."
REQUIRED = ["input", "query", "keys", "values", "scores", "weights", "head_output", "attention_output",
            "after_attention", "ffn_hidden", "layer_output"]  # fmt: skip


def run(*args: str) -> tuple[int, str, str]:
    """The command in this process (importing JAX once for every test), its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def json_of(*args: str) -> dict:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module", params=["default", "minilm", "roberta folder"])
def inspected(request, tmp_path_factory):
    model = request.param
    if model == "minilm":
        from explorer.model import pretrained

        if pretrained.available():
            pytest.fail(pretrained.available())  # `make test` installs it: its absence is a set-up bug
    if model == "roberta folder":
        from tests.hf_models import write_model

        model = str(write_model(tmp_path_factory.mktemp("trace") / "tiny-roberta", "roberta", hidden_act="gelu_new"))
    return model, json_of("inspect", TEXT, "--model", model)


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


def test_trace_json_agrees_with_inspect(inspected):
    model, inspection = inspected
    config = inspection["config"]
    tokens = inspection["tokens"]
    L, H, T = config["num_layers"], config["num_heads"], len(tokens)
    residual = np.asarray(inspection["residual_norm"])  # [2L+1, T]
    attention = np.asarray(inspection["attention"])  # [L, H, T, T]
    # The first and last layer, head and token, and one in the middle.
    for layer, head, position in [(1, 1, 0), (L, H, T - 1), ((L + 1) // 2, (H + 1) // 2, T // 2)]:
        payload = json_of("trace", TEXT, "--model", model, "--layer", str(layer), "--head", str(head),
                          "--position", str(position))  # fmt: skip
        where = f"{model}: layer {layer}, head {head}, position {position}"
        assert (payload["layer"], payload["head"], payload["position"]) == (layer, head, position)
        assert payload["tokens"] == tokens
        names = [step["name"] for step in payload["steps"]]
        assert [n for n in names if n in REQUIRED] == REQUIRED, names
        step = {s["name"]: np.asarray(s["value"], np.float64) for s in payload["steps"]}
        for s in payload["steps"]:
            assert list(np.shape(s["value"])) == s["shape"] and s["formula"], s["name"]
        # The model's own numbers, as `inspect` reports them.
        np.testing.assert_allclose(step["weights"], attention[layer - 1, head - 1, position], atol=2e-6, err_msg=where)
        for name, row in (("input", 2 * layer - 2), ("after_attention", 2 * layer - 1), ("layer_output", 2 * layer)):
            np.testing.assert_allclose(
                np.linalg.norm(step[name]), residual[row, position], rtol=1e-5, atol=1e-4, err_msg=f"{where}: {name}"
            )
        # Each step from the ones before it, by its formula (values are rounded to 6 decimals in the JSON).
        key_size = config["d_model"] // H
        np.testing.assert_allclose(step["scores"], step["keys"] @ step["query"] / np.sqrt(key_size), atol=1e-4)
        np.testing.assert_allclose(softmax(step["scores"]), step["weights"], atol=1e-5)
        np.testing.assert_allclose(step["head_output"], step["weights"] @ step["values"], atol=1e-5)
        assert step["keys"].shape == step["values"].shape == (T, key_size)
        assert step["ffn_hidden"].shape == (config["ffn_size"],)
        activation = ACTIVATIONS[config["activation"]].function(step["ffn_hidden"])
        np.testing.assert_allclose(step["ffn_activation"], activation, atol=1e-5, err_msg=where)
    if model.endswith("tiny-roberta"):
        assert (config["activation"], config["position_offset"], config["head_transform"]) == ("gelu_tanh", 2, True)
        assert tokens[0] == "<s>" and tokens[-1] == "</s>"


def test_causal_trace_masks_the_later_keys():
    payload = json_of("trace", TEXT, "--layer", "1", "--head", "2", "--position", "3", "--causal")
    step = {s["name"]: np.asarray(s["value"]) for s in payload["steps"]}
    assert payload["causal"] and step["mask"].tolist() == [1.0] * 4 + [0.0] * (len(payload["tokens"]) - 4)
    assert np.all(step["weights"][4:] == 0) and abs(step["weights"].sum() - 1) < 1e-5
    np.testing.assert_allclose(softmax(step["scores"][:4]), step["weights"][:4], atol=1e-5)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--layer", "0", "--head", "1", "--position", "0"], "--layer 0 is out of range: the model has 2 layers (1–2)"),
        (["--layer", "3", "--head", "1", "--position", "0"], "--layer 3 is out of range"),
        (["--layer", "1", "--head", "5", "--position", "0"], "--head 5 is out of range: the model has 4 heads"),
        (["--layer", "1", "--head", "1", "--position", "10"], "--position 10 is out of range: the text has 10 tokens"),
        (["--layer", "1", "--head", "1", "--position", "-1"], "--position -1 is out of range"),
        (["--layer", "x", "--head", "1", "--position", "0"], "invalid int value"),
    ],
)
def test_out_of_range_choices_exit_2_with_one_line(args, message):
    code, out, err = run("trace", TEXT, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


def test_trace_prints_every_step_for_a_person():
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "trace", TEXT, "--layer", "2", "--head", "1", "--position", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "layer 2, head 1, query 3 (␣door)" in result.stdout
    for name in REQUIRED + ["attention_residual", "ffn_activation", "ffn_residual"]:
        assert f"\n{name}  (" in result.stdout, name
    assert "GELU" in result.stdout
