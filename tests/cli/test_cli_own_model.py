"""``--model FOLDER`` (and a Hub id) on the command line: ``predict --json`` with each guess's id, ``inspect``,
``similarity`` and ``bench`` on tiny random models in Hugging Face's layout, and one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.cli.main import main
from explorer.model.pretrained import load_folder
from tests.hf_models import write_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    return {
        "bert": write_model(root / "tiny-bert", "bert"),
        "roberta": write_model(root / "tiny-roberta", "roberta"),
        "electra": write_model(root / "tiny-electra", "electra"),
        "base": write_model(root / "tiny-base", "distilbert", head=False),
    }


def run(args, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_json_gives_each_guess_its_id(models):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "explorer",
            "predict",
            "She opened the [MASK] and the [MASK].",
            "--model",
            models["bert"],
        ]
        + ["--top", "5", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert "needs about" in done.stderr  # the memory, said before loading
    bundle = load_folder(models["bert"])
    assert len(payload["masks"]) == 2
    for mask in payload["masks"]:
        assert set(mask) == {"position", "predictions"}
        guesses = mask["predictions"]
        assert [set(g) for g in guesses] == [{"token", "id", "probability"}] * 5
        assert [g["token"] for g in guesses] == [bundle.vocab.token_text(g["id"]) for g in guesses]
        probabilities = [g["probability"] for g in guesses]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    assert payload["model"]["task"] == "masked-lm"


def test_the_mask_in_either_spelling(models, capsys):
    outputs = []
    for text in ("The cat sat on the [MASK].", "The cat sat on the <mask>."):
        code, out, err = run(["predict", text, "--model", models["roberta"], "--json"], capsys)
        assert code == 0, err
        outputs.append(json.loads(out)["masks"])
    assert outputs[0] == outputs[1] and outputs[0][0]["position"] == 6  # <s> The Ġcat Ġsat Ġon Ġthe <mask>


def test_inspect_json_of_a_narrow_embedding_model(models, capsys):
    code, out, err = run(["inspect", "She opened the [MASK].", "--model", models["electra"], "--json"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    config = payload["config"]
    assert config["embedding_size"] == 8 and config["d_model"] == 16 and config["head_transform"]
    T = len(payload["tokens"])
    attention = np.asarray(payload["attention"])
    assert attention.shape == (config["num_layers"], config["num_heads"], T, T)
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert payload["tokens"][0] == "[CLS]" and payload["tokens"][-1] == "[SEP]"
    assert payload["ids"] == payload["model_ids"]  # a pretrained vocabulary's ids are its rows
    assert len(payload["logit_lens"]) == 2 * config["num_layers"] + 1
    assert "mask token" in payload["predictions_meaning"] and len(payload["predictions"]) == T
    assert len(payload["layer_norm"]) == 2 * config["num_layers"]  # the 8-wide embedding norm is not stacked


def test_similarity_and_bench_take_a_folder(models, capsys):
    code, out, err = run(["similarity", "A cat sat.", "A cat sat.", "--model", models["base"], "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["cosine_similarity"] == pytest.approx(1.0, abs=1e-5)
    code, out, err = run(["bench", "--model", models["base"], "--quick", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["model"].startswith("pretrained: tiny-base") and set(report["forward_ms"]) == {"32"}  # max_len 32


def test_refusals_are_one_line(models, tmp_path, capsys):
    pickled = tmp_path / "pickled"
    write_model(pickled, "bert")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    cases = [
        (["predict", "a [MASK].", "--model", pickled], "a pickle, which can run code"),
        (["predict", "a [MASK].", "--model", models["base"]], "no prediction head"),
        (["inspect", "hi", "--model", tmp_path / "not" / "there"], "is not a folder"),
        (["inspect", "hi", "--model", "minilm", "--checkpoint", "x.safetensors"], "either --checkpoint or --model"),
    ]
    for args, fragment in cases:
        code, _, err = run(args, capsys)
        errors = [line for line in err.strip().splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and fragment in errors[0], err
        assert err.strip().splitlines()[-1] == errors[0]  # nothing after the error
