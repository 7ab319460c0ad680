"""Forward pass with every intermediate, batch 1: pretrained MiniLM-L6 against the default small model.

.venv/bin/python bench/bench_pretrained.py [--json] [--quick]

Both models run in one process, taking turns (explorer.cli.benchmark.compare_forward_latency), so the ratio
holds even when the shared machine's speed drifts.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import DEFAULT_CHECKPOINT  # noqa: E402
from explorer.cli.benchmark import compare_forward_latency  # noqa: E402
from explorer.model import pretrained  # noqa: E402
from explorer.model.checkpoint import load  # noqa: E402
from explorer.model.inference import use_synchronous_dispatch  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    problem = pretrained.available()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    use_synchronous_dispatch()  # as the app and the CLI run
    bundles = {"default": load(DEFAULT_CHECKPOINT), "MiniLM-L6": pretrained.load_minilm()}
    rows = compare_forward_latency(bundles, repeats=40 if args.quick else 200, rounds=2 if args.quick else 3)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("forward with all intermediates, batch 1 (median ms; ratio against the default model):")
    print("  tokens   model        ms       ratio")
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:6.1f}x"
        print(f"  {row['tokens']:>6}   {row['model']:<10} {row['forward_ms']:8.3f}   {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
