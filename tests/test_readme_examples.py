"""The README's fill-mask examples are what the default model answers today (they once drifted from it)."""

from __future__ import annotations

from bench import readme_examples


def test_the_readme_holds_the_examples_the_model_makes():
    readme = readme_examples.README.read_text(encoding="utf-8")
    block = readme_examples.examples_markdown()
    assert readme.count(readme_examples.BEGIN) == 1 and readme.count(readme_examples.END) == 1
    assert readme_examples.with_examples(readme, block) == readme, (
        "README.md's fill-mask examples differ from the model's answers: run "
        "`PYTHONPATH=. .venv/bin/python bench/readme_examples.py --write`"
    )
    assert len(block.splitlines()) == len(readme_examples.EXAMPLES) and "*door*" in block
