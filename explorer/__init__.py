"""Transformer Encoder Explorer: a JAX/Haiku encoder that shows its work, and the tools around it.

This package is a pure library (it never imports streamlit): the app's pages, the CLI and the tests all
build on it.
"""

import os
from pathlib import Path

import jax

# The checkpoint the app opens on; made by `python -m explorer train` (see the README).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default.npz"

# One JAX CPU device per core, so that training can split each batch across the cores (data parallel,
# see explorer/training.py). It must be set before JAX runs anything; if a program already has, JAX
# keeps one device and training runs on it. Inference is unaffected: it runs on device 0.
# EXPLORER_CPU_DEVICES overrides the count (1 turns data parallelism off).
try:
    jax.config.update(
        "jax_num_cpu_devices", int(os.environ.get("EXPLORER_CPU_DEVICES") or len(os.sched_getaffinity(0)))
    )
except RuntimeError:
    pass
