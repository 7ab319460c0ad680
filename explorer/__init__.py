"""Transformer Encoder Explorer: a JAX/Haiku encoder that shows its work, and the tools around it.

This package is a pure library (it never imports streamlit): the app's pages, the CLI and the tests all
build on it. Its packages are the layers of the stack, and imports point down it (each layer's docstring
says what it may import; tests/test_structure.py checks every import against that):

    pages/, app.py        the Streamlit app (outside this package)
    cli/                  the command line and the inference benchmark            -> any layer
    pipeline.py           text -> tokens -> model -> every intermediate           -> text, model, interpret
    figures/              arrays in, plotly figures out                           -> text, interpret
    training/             tasks, the training step, the Trainer, worker processes -> text, model, (analysis)
    interpret/            head roles, rollout, logit lens, probes, similarity     -> text, model
    model/                config, the encoder's parts, checkpoints, inference     -> text
    text/                 tokenizers, vocabularies, corpora, training texts       -> nothing

``export.py`` turns a figure's numbers into CSV or JSON and imports nothing of the stack. This module holds
the few names every layer may read: the default checkpoint's path, the cores this process may use, and
JAX's CPU-device setup (one device per core, before anything runs).
"""

import os
import warnings
from pathlib import Path

import jax

# The checkpoint the app opens on; made by `python -m explorer train` (see the README).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "default.safetensors"


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpu_devices() -> int:
    """One JAX CPU device per core, or ``EXPLORER_CPU_DEVICES`` (1 turns data parallelism off)."""
    cores = available_cores()
    wanted = os.environ.get("EXPLORER_CPU_DEVICES", "").strip()
    if not wanted:
        return cores
    if wanted.isdigit() and int(wanted) >= 1:
        return int(wanted)
    warnings.warn(
        f"EXPLORER_CPU_DEVICES must be a positive whole number, not {wanted!r}; using {cores} (one per core).",
        stacklevel=2,
    )
    return cores


# One JAX CPU device per core, so that training can split each batch across the cores (data parallel,
# see explorer/training/parallel.py). It must be set before JAX runs anything; if a program already has, JAX
# keeps one device and training runs on it. Inference is unaffected: it runs on device 0.
try:
    jax.config.update("jax_num_cpu_devices", _cpu_devices())
except RuntimeError:
    pass
