"""Our encoder against Hugging Face ``transformers`` on tiny random BERT, RoBERTa, DistilBERT and ELECTRA
masked-LM models written by transformers' own ``save_pretrained``.

Run it with a Python that has ``torch`` and ``transformers`` (they are not dependencies of this project):

    /path/to/venv-with-transformers/bin/python bench/check_hf_parity.py [--explorer-python .venv/bin/python]

For each architecture it builds a ``*ForMaskedLM`` with a random config and a tokenizer (WordPiece or
byte-level BPE, through transformers' tokenizer classes), saves both with ``save_pretrained`` into a temporary
folder, and runs the same texts through transformers (eager attention) and through our command line
(``python -m explorer inspect/predict --model FOLDER --json``, run with the project's own Python). It reports
the largest difference in attention and in the top-5 probabilities, and checks the token ids and the top-5
ids are equal. It then lays each folder out as huggingface_hub's cache and checks that ``--model ORG/NAME``
with ``HF_HUB_OFFLINE=1`` gives the same output as the folder, that a folder with only the older tokenizer
files (``vocab.txt``, ``vocab.json`` + ``merges.txt``) gives the same tokens, and that a Hub id that is not
cached exits with status 2 and one line. Exit status 1 if anything differs by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = [
    "The cat sat on the [MASK].",
    "She opened the [MASK] and walked into the room where her [MASK] was waiting.",
]
PLAIN = "Unbelievable: the dog, 42 cats and a naïve café; emoji 🙂 too!"


def build(architecture: str, folder: Path, seed: int) -> None:
    """A random ``*ForMaskedLM`` and its tokenizer, saved by transformers itself."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertTokenizer,
        DistilBertConfig,
        DistilBertForMaskedLM,
        ElectraConfig,
        ElectraForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
        RobertaTokenizer,
    )

    from tests.hf_models import SENTENCES, WORDS

    torch.manual_seed(seed)
    if architecture == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        bpe = Tokenizer(models.BPE())
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        bpe.train_from_iterator(SENTENCES * 3 + [" ".join(WORDS)], trainer)
        data = json.loads(bpe.to_str())["model"]
        tokenizer = RobertaTokenizer(
            vocab=data["vocab"],
            merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in data["merges"]],
        )
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"%-()")
        pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + ["##ing", "##ed", "##s", "##able"]
        vocab = list(dict.fromkeys(specials + chars + WORDS + pieces))
        tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    size = len(tokenizer.get_vocab())
    common = dict(vocab_size=size, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24, hidden_size=16)
    if architecture == "bert":
        model = BertForMaskedLM(BertConfig(**common, max_position_embeddings=64, hidden_act="gelu"))
    elif architecture == "roberta":
        model = RobertaForMaskedLM(
            RobertaConfig(
                **common, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, hidden_act="gelu_new"
            )
        )
    elif architecture == "distilbert":
        model = DistilBertForMaskedLM(
            DistilBertConfig(vocab_size=size, dim=16, n_heads=2, n_layers=2, hidden_dim=24, max_position_embeddings=64)
        )
    else:
        model = ElectraForMaskedLM(ElectraConfig(**common, embedding_size=8, max_position_embeddings=64))
    with torch.no_grad():  # random init leaves LM biases at zero and layer norms at one: make every number count
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def hf_outputs(folder: Path, text: str, top: int = 5) -> dict:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    hf_text = text.replace("[MASK]", tokenizer.mask_token)
    inputs = tokenizer(hf_text, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    ids = inputs["input_ids"][0].tolist()
    probabilities = out.logits[0].softmax(-1)
    masks = [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    guesses = []
    for position in masks:
        p, index = probabilities[position].topk(top)
        guesses.append({"position": position, "ids": index.tolist(), "probabilities": p.tolist()})
    attention = torch.stack([a[0] for a in out.attentions]).numpy()  # [L, H, T, T]
    return {"ids": ids, "attention": attention.tolist(), "masks": guesses}


def ours(python: str, command: str, text: str, model: str, env: dict | None = None) -> tuple[int, dict | str]:
    args = [python, "-m", "explorer", command, text, "--model", model, "--json"] + (
        ["--top", "5"] if command == "predict" else []
    )
    done = subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    )
    if done.returncode != 0:
        return done.returncode, done.stderr
    return 0, json.loads(done.stdout)


def hub_layout(root: Path, repo_id: str, folder: Path) -> None:
    from tests.hf_models import hub_cache

    hub_cache(root / "hub", repo_id, folder)


def main() -> int:
    import numpy as np
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--explorer-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed, architecture in enumerate(("bert", "roberta", "distilbert", "electra")):
            folder = tmp / f"tiny-{architecture}"
            build(architecture, folder, seed)
            row = {"files": sorted(p.name for p in folder.iterdir()), "attention": 0.0, "top5": 0.0}
            for text in TEXTS + [PLAIN]:
                reference = hf_outputs(folder, text)
                code, inspected = ours(args.explorer_python, "inspect", text, str(folder))
                if code:
                    failures.append(f"{architecture}: inspect failed: {inspected}")
                    continue
                if inspected["model_ids"] != reference["ids"]:
                    failures.append(
                        f"{architecture}: token ids differ for {text!r}: {inspected['model_ids']} vs {reference['ids']}"
                    )
                    continue
                row["attention"] = max(
                    row["attention"],
                    float(np.abs(np.array(inspected["attention"]) - np.array(reference["attention"])).max()),
                )
                if not reference["masks"]:
                    continue
                code, predicted = ours(args.explorer_python, "predict", text, str(folder))
                if code:
                    failures.append(f"{architecture}: predict failed: {predicted}")
                    continue
                for mine, theirs in zip(predicted["masks"], reference["masks"], strict=True):
                    if (
                        mine["position"] != theirs["position"]
                        or [p["id"] for p in mine["predictions"]] != theirs["ids"]
                    ):
                        failures.append(f"{architecture}: top-5 ids differ for {text!r}")
                    row["top5"] = max(
                        row["top5"],
                        float(
                            np.abs(
                                np.array([p["probability"] for p in mine["predictions"]]) - theirs["probabilities"]
                            ).max()
                        ),
                    )
            # The same folder through an offline Hub cache, and with only the older tokenizer files.
            home = tmp / f"home-{architecture}"
            hub_layout(home, f"parity/tiny-{architecture}", folder)
            offline = {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
            _, from_folder = ours(args.explorer_python, "predict", TEXTS[1], str(folder))
            code, from_cache = ours(args.explorer_python, "predict", TEXTS[1], f"parity/tiny-{architecture}", offline)
            row["hub_cache_same"] = code == 0 and from_cache["masks"] == from_folder["masks"]
            if not row["hub_cache_same"]:
                failures.append(f"{architecture}: the Hub cache gives {from_cache!r}")
            legacy = tmp / f"legacy-{architecture}"
            shutil.copytree(folder, legacy)
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                (legacy / name).unlink(missing_ok=True)
            if architecture == "roberta":
                from transformers import AutoTokenizer

                AutoTokenizer.from_pretrained(folder).backend_tokenizer.model.save(
                    str(legacy)
                )  # vocab.json, merges.txt
            else:
                vocab = wordpiece_vocab_lines(folder)
                (legacy / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
            _, plain_folder = ours(args.explorer_python, "inspect", PLAIN, str(folder))
            code, plain_legacy = ours(args.explorer_python, "inspect", PLAIN, str(legacy))
            row["legacy_tokenizer_same_ids"] = code == 0 and plain_legacy["model_ids"] == plain_folder["model_ids"]
            if not row["legacy_tokenizer_same_ids"]:
                failures.append(f"{architecture}: the older tokenizer files give other ids: {plain_legacy!r}")
            report[architecture] = row
            for kind in ("attention", "top5"):
                if row[kind] > args.tolerance:
                    failures.append(f"{architecture}: {kind} differs by {row[kind]:.2e}")
        code, missing = ours(
            args.explorer_python,
            "predict",
            TEXTS[0],
            "parity/not-cached",
            {"HF_HOME": str(tmp / "empty"), "HF_HUB_OFFLINE": "1"},
        )
        report["missing_offline"] = {"exit": code, "stderr": missing}
        if code != 2 or len(str(missing).strip().splitlines()) != 1:
            failures.append(f"a Hub id not in the cache, offline: exit {code}, stderr {missing!r}")
    report["failures"] = failures
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            "architecture  max |attention diff|  max |top-5 probability diff|  Hub cache = folder  old tokenizer files = same ids"
        )
        for architecture in ("bert", "roberta", "distilbert", "electra"):
            row = report.get(architecture, {})
            print(
                f"{architecture:<12}  {row.get('attention', float('nan')):.2e}              {row.get('top5', float('nan')):.2e}"
                f"                        {row.get('hub_cache_same')}               {row.get('legacy_tokenizer_same_ids')}"
            )
        print(f"Hub id not cached, offline: exit {report['missing_offline']['exit']}: {str(missing).strip()}")
        for failure in failures:
            print(f"FAILED: {failure}")
    return 1 if failures else 0


def wordpiece_vocab_lines(folder: Path) -> list[str]:
    """A WordPiece tokenizer's vocabulary in id order, as a vocab.txt lists it."""
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(folder).get_vocab()
    return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]


if __name__ == "__main__":
    sys.exit(main())
