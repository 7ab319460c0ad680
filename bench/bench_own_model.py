"""A BERT-base-sized (or BERT-large-sized) masked-LM folder, random tensors in Hugging Face's layout: how long it
takes to load, how much memory it takes against what the loader says beforehand, and its forward with every
intermediate at 32 and 128 tokens (and 512 once), taking turns with MiniLM-L6 in the same process.

    PYTHONPATH=. .venv/bin/python bench/bench_own_model.py [--large] [--json]

The folder is written to a temporary directory (440 MB for base, 1.3 GB for large) and removed afterwards.
Absolute times drift with the machine's load: the ratio to MiniLM, measured alternating, is the steadier
figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}
VOCAB = 30522


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def write_folder(folder: Path, size: str) -> None:
    """config.json, model.safetensors (BertForMaskedLM names, random) and a 30,522-entry WordPiece tokenizer."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    dims = SIZES[size]
    D, F, L = dims["hidden_size"], dims["intermediate_size"], dims["num_hidden_layers"]
    config = dict(
        model_type="bert",
        architectures=["BertForMaskedLM"],
        vocab_size=VOCAB,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        pad_token_id=0,
        **dims,
    )
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)

    def r(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    t = {
        "bert.embeddings.word_embeddings.weight": r(VOCAB, D),
        "bert.embeddings.position_embeddings.weight": r(512, D),
        "bert.embeddings.token_type_embeddings.weight": r(2, D),
        "bert.embeddings.LayerNorm.weight": np.ones(D, np.float32),
        "bert.embeddings.LayerNorm.bias": np.zeros(D, np.float32),
        "cls.predictions.transform.dense.weight": r(D, D),
        "cls.predictions.transform.dense.bias": np.zeros(D, np.float32),
        "cls.predictions.transform.LayerNorm.weight": np.ones(D, np.float32),
        "cls.predictions.transform.LayerNorm.bias": np.zeros(D, np.float32),
        "cls.predictions.bias": np.zeros(VOCAB, np.float32),
    }
    for i in range(L):
        p = f"bert.encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            t[p + name + ".weight"], t[p + name + ".bias"] = r(D, D), np.zeros(D, np.float32)
        t[p + "intermediate.dense.weight"], t[p + "intermediate.dense.bias"] = r(F, D), np.zeros(F, np.float32)
        t[p + "output.dense.weight"], t[p + "output.dense.bias"] = r(D, F), np.zeros(D, np.float32)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + name + ".weight"], t[p + name + ".bias"] = np.ones(D, np.float32), np.zeros(D, np.float32)
    save_file(t, str(folder / "model.safetensors"))
    del t
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-")
    words = specials + letters + [f"##{c}" for c in letters]
    words += [f"w{i}" for i in range(VOCAB - len(words))]
    tokenizer = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.save(str(folder / "tokenizer.json"))


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure(folder: Path, rounds: int) -> dict:
    """In a fresh process: load the folder and MiniLM, time forwards taking turns, and the memory the model
    takes over the process before it loaded (resident after loading, and the peak through a 512-token forward)."""
    from explorer.model.inference import InferenceEngine, use_synchronous_dispatch
    from explorer.model.pretrained import load_folder, load_minilm

    use_synchronous_dispatch()
    report: dict = {}
    minilm = load_minilm()
    minilm_engine = InferenceEngine(minilm.config)
    minilm_engine.run(minilm.params, np.arange(100, 132, dtype=np.int32))
    said: list[str] = []
    before = rss_bytes()
    start = time.perf_counter()
    bundle = load_folder(folder, progress=said.append)
    report["load_s"] = time.perf_counter() - start
    report["said_before_loading"] = said[0]
    report["rss_after_load_mb"] = (rss_bytes() - before) / 2**20
    report["peak_after_load_mb"] = (peak_rss_bytes() - before) / 2**20
    engine = InferenceEngine(bundle.config)
    rng = np.random.default_rng(1)
    report["parameters"] = bundle.info["parameters"]
    report["first_call_s"], report["forward_ms"], report["minilm_forward_ms"], report["ratio_to_minilm"] = (
        {},
        {},
        {},
        {},
    )
    for length in (32, 128):
        ids = rng.integers(100, VOCAB, size=length).astype(np.int32)
        start = time.perf_counter()
        engine.run(bundle.params, ids)  # compiles this bucket
        report["first_call_s"][length] = time.perf_counter() - start
        minilm_engine.run(minilm.params, ids)
        ours, theirs = [], []
        for _ in range(rounds):  # taking turns, so the machine's drift hits both alike
            ours.append(median_ms(lambda ids=ids: engine.run(bundle.params, ids), 10 if length == 32 else 5))
            theirs.append(median_ms(lambda ids=ids: minilm_engine.run(minilm.params, ids), 20))
        report["forward_ms"][length] = float(np.median(ours))
        report["minilm_forward_ms"][length] = float(np.median(theirs))
        report["ratio_to_minilm"][length] = report["forward_ms"][length] / report["minilm_forward_ms"][length]
    report["peak_after_128_mb"] = (peak_rss_bytes() - before) / 2**20
    peak_before = peak_rss_bytes()
    ids = rng.integers(100, VOCAB, size=512).astype(np.int32)
    start = time.perf_counter()
    result = engine.run(bundle.params, ids)
    report["first_call_512_s"] = time.perf_counter() - start
    report["peak_after_first_512_mb"] = (peak_rss_bytes() - before) / 2**20
    report["forward_512_ms"] = median_ms(lambda: engine.run(bundle.params, ids), 3)
    del result
    report["rss_end_mb"] = (rss_bytes() - before) / 2**20
    report["peak_over_before_load_mb"] = (max(peak_rss_bytes(), peak_before) - before) / 2**20
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="BERT-large's size instead of BERT-base's")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process: a folder to measure
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.rounds)))
        return 0
    size = "large" if args.large else "base"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / f"bert-{size}-random"
        write_folder(folder, size)
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(folder), "--rounds", str(args.rounds)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    report = {"size": size, **json.loads(child.stdout.strip().splitlines()[-1])}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"BERT-{size}-sized random masked-LM, {report['parameters'] / 1e6:.1f}M parameters")
    print(f"  said before loading: {report['said_before_loading']}")
    print(
        f"  load (read, map, float32, onto the device): {report['load_s']:.1f} s; resident memory "
        f"+{report['rss_after_load_mb']:.0f} MB (peak while loading +{report['peak_after_load_mb']:.0f} MB)"
    )
    for length in ("32", "128"):
        print(
            f"  {length:>3} tokens: first call (compile) {report['first_call_s'][length]:.1f} s, forward "
            f"{report['forward_ms'][length]:.1f} ms = {report['ratio_to_minilm'][length]:.1f}x MiniLM-L6 "
            f"({report['minilm_forward_ms'][length]:.1f} ms) in the same run"
        )
    print(
        f"  512 tokens: first call {report['first_call_512_s']:.1f} s, forward {report['forward_512_ms']:.0f} ms; peak "
        f"memory over the process before the model loaded: +{report['peak_after_128_mb']:.0f} MB through 128 tokens, "
        f"+{report['peak_after_first_512_mb']:.0f} MB through the first 512-token call (its compile included), "
        f"+{report['peak_over_before_load_mb']:.0f} MB at the end; resident at the end +{report['rss_end_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
