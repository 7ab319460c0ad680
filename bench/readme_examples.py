"""The README's fill-mask examples, made from the default model by the path the app and `explorer predict` take.

    PYTHONPATH=. .venv/bin/python bench/readme_examples.py          # prints the README's list
    PYTHONPATH=. .venv/bin/python bench/readme_examples.py --write  # writes it into README.md

The checkpoint is in git, so the list is the same on every run: tests/test_readme_examples.py checks that the
README holds exactly what this makes, so the figures there cannot drift from the model again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer import DEFAULT_CHECKPOINT  # noqa: E402
from explorer.figures.predictions import percent  # noqa: E402
from explorer.model import checkpoint  # noqa: E402
from explorer.model.inference import InferenceEngine  # noqa: E402
from explorer.pipeline import fill_mask  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- fill-mask examples: made by bench/readme_examples.py, do not edit by hand -->"
END = "<!-- end of the fill-mask examples -->"
EXAMPLES = (
    "She opened the [MASK] and walked into the room.",
    "The cat sat on the [MASK].",
    "The president of the United [MASK] spoke on television.",
    "When the rain stopped, the children went [MASK] to play in the garden.",
    "He drank a cup of [MASK] every morning.",
)
GUESSES = 3


def examples_markdown() -> str:
    """One line per example: the sentence and the model's top guesses with their probabilities."""
    bundle = checkpoint.load(DEFAULT_CHECKPOINT)
    engine = InferenceEngine(bundle.config)
    lines = []
    for text in EXAMPLES:
        (fill,) = fill_mask(bundle, engine, text, k=GUESSES)
        guesses = ", ".join(f"*{token.strip()}* {percent(probability)}" for token, probability in fill.predictions)
        lines.append(f'- "{text}" → {guesses}')
    return "\n".join(lines)


def with_examples(readme: str, block: str) -> str:
    """``readme`` with the text between ``BEGIN`` and ``END`` replaced by ``block``."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + block + "\n" + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the list into README.md")
    args = parser.parse_args()
    block = examples_markdown()
    if args.write:
        text = with_examples(README.read_text(encoding="utf-8"), block)
        temporary = README.with_suffix(".md.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(README)  # atomically
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
