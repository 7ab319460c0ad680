"""Quality of an English masked-token model on held-out Brown Corpus text, against two baselines.

  PYTHONPATH=. .venv/bin/python bench/bench_english.py [--checkpoint PATH] [--count N] [--json]

Hides one token at a time in windows of held-out text (every tenth text of each genre, never trained on)
and reports top-1 / top-5 accuracy of the model and of two baselines built from the training text:
unigram (always the most frequent tokens) and neighbour (the token seen most often between the same two
neighbours). Then fills a few everyday cloze sentences. One run, one table: see explorer/interpret/cloze.py.

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import DEFAULT_CHECKPOINT  # noqa: E402
from explorer.interpret.cloze import NeighbourBaseline, accuracy, cloze_set, model_guesses  # noqa: E402
from explorer.model import checkpoint  # noqa: E402
from explorer.model.inference import InferenceEngine, use_synchronous_dispatch  # noqa: E402
from explorer.pipeline import fill_mask  # noqa: E402
from explorer.text.texts import named_text, token_streams  # noqa: E402

EVERYDAY = (
    "She opened the [MASK] and walked into the room.",
    "He drank a cup of [MASK] every morning.",
    "The cat sat on the [MASK].",
    "My sister said that she would call me [MASK].",
    "The children were playing in the [MASK].",
    "It was a cold [MASK] in December.",
    "I [MASK] to the store to buy some bread.",
    "The president of the United [MASK] spoke on television.",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--count", type=int, default=5000, help="held-out positions to fill")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    use_synchronous_dispatch()
    started = time.perf_counter()
    bundle = checkpoint.load(args.checkpoint)
    train, held_out = token_streams(named_text("english"), bundle.vocab)
    cloze = cloze_set(held_out, args.count)
    baseline = NeighbourBaseline(train)
    engine = InferenceEngine(bundle.config)
    rows = {
        "unigram": accuracy(baseline.predict_unigram(cloze), cloze.targets),
        "neighbour": accuracy(baseline.predict(cloze), cloze.targets),
        "model": accuracy(model_guesses(bundle, engine, cloze), cloze.targets),
    }
    fills = {text: [token for token, _ in fill_mask(bundle, engine, text, k=3)[0].predictions] for text in EVERYDAY}
    report = {
        "checkpoint": args.checkpoint,
        "config": bundle.config.to_dict(),
        "held_out_positions": len(cloze.positions),
        "held_out_tokens": len(held_out),
        "accuracy": {name: {"top1": round(a, 4), "top5": round(b, 4)} for name, (a, b) in rows.items()},
        "everyday": fills,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.checkpoint}: {len(cloze.positions)} held-out positions of {len(held_out)} held-out tokens")
    print("| predictor | top-1 | top-5 |\n| --- | --- | --- |")
    for name, (top1, top5) in rows.items():
        print(f"| {name} | {top1:.1%} | {top5:.1%} |")
    for text, guesses in fills.items():
        print(f"{text}  ->  {' | '.join(repr(g) for g in guesses)}")
    print(f"({report['seconds']} s)")


if __name__ == "__main__":
    main()
