"""Transformer Encoder Explorer: a JAX/Haiku encoder that shows its work, and the tools around it.

This package is a pure library (it never imports streamlit): the app's pages, the CLI and the tests all
build on it.
"""

from pathlib import Path

# The checkpoint the app opens on; made by `python -m explorer train` (see the README).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default.npz"
