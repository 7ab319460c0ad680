"""Inference benchmark (same as `python -m explorer bench`): run from the repo root.

.venv/bin/python bench/bench_inference.py [--json] [--quick]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
