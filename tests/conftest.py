"""Shared fixtures: small configs and their parameters, built once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Two CPU devices whatever the machine, so the data-parallel training path is always the one tested
# (explorer/__init__.py reads this before JAX starts).
os.environ.setdefault("EXPLORER_CPU_DEVICES", "2")
# Tests must not depend on (or pollute) a user's persistent JAX cache.
os.environ.setdefault("EXPLORER_JAX_CACHE", str(ROOT / ".pytest_cache" / "jax"))


@pytest.fixture(scope="session")
def tiny_config():
    from explorer.model.config import ModelConfig

    return ModelConfig(vocab_size=40, d_model=16, num_heads=4, num_layers=2, ffn_size=32, max_len=64)
