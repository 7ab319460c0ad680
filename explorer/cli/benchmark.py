"""Inference benchmark: latency with every intermediate, the typing scenario, and cold start.

Numbers on a shared machine drift by tens of percent over minutes, so every comparison here is made
within one run, alternating variants, and reported as a ratio as well as in milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explorer.model.bundle import ModelBundle
from explorer.model.checkpoint import load_default
from explorer.model.encoder import build_model
from explorer.model.inference import InferenceEngine, use_synchronous_dispatch

ROOT = Path(__file__).resolve().parents[2]  # the repository: explorer/cli/benchmark.py

# Targets from the engine issue, for a 2-core CPU.
TARGET_FORWARD_32_MS = 0.3
TARGET_MAX_TYPING_CALL_MS = 5.0


def _median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def _forward_calls(engine: InferenceEngine, params, length: int):
    """``(device, host)`` calls at batch 1 and ``length`` tokens, compiled first: the forward with every
    intermediate, waited for on the device; and the same through ``engine.run`` (copy to host, slice)."""
    ids = (np.arange(length) % (engine.config.vocab_size - 3) + 3).astype(np.int32)
    tokens = jnp.asarray(ids[None])
    mask = jnp.ones((1, length), bool)
    causal = jnp.asarray(False)
    head_mask = jnp.asarray(engine.default_head_mask())
    engine.warmup(params, (length,))

    def device():
        return jax.block_until_ready(engine._forward(params, tokens, mask, head_mask, causal))

    return device, lambda: engine.run(params, ids)


def _repeats_at(length: int, repeats: int) -> int:
    return max(20, repeats * 32 // length)  # fewer calls for longer inputs: each costs more


def forward_latency(engine: InferenceEngine, params, lengths=(32, 128, 512), repeats: int = 300) -> list[dict]:
    """Median ms per call at batch 1: the device forward alone, and ``engine.run`` (plus copy to host)."""
    rows = []
    for length in lengths:
        device, host = _forward_calls(engine, params, length)
        reps = _repeats_at(length, repeats)
        rows.append(
            {"tokens": length, "forward_ms": _median_ms(device, reps), "forward_to_host_ms": _median_ms(host, reps)}
        )
    return rows


def compare_forward_latency(
    bundles: dict[str, ModelBundle], lengths=(32, 128, 512), repeats: int = 200, rounds: int = 3
) -> list[dict]:
    """Median ms of the device forward with every intermediate, batch 1, per model and length.

    The models take turns, ``rounds`` times per length, so the machine's drift hits them alike; each
    model's figure is the median of its rounds' medians, and ``ratio`` divides it by the first model's.
    A length beyond a model's ``max_len`` is skipped for that model. Returns rows
    ``{"tokens", "model", "forward_ms", "ratio"}`` (``ratio`` None when the first model was skipped).
    """
    if not bundles:
        raise ValueError("Give at least one model to time.")
    first = next(iter(bundles))
    rows = []
    for length in lengths:
        calls = {
            name: _forward_calls(InferenceEngine(bundle.config), bundle.params, length)[0]
            for name, bundle in bundles.items()
            if length <= bundle.config.max_len
        }
        reps = _repeats_at(length, repeats)
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(_median_ms(call, reps))
        medians = {name: float(np.median(t)) for name, t in times.items()}
        for name, ms in medians.items():
            ratio = ms / medians[first] if first in medians else None
            rows.append({"tokens": length, "model": name, "forward_ms": ms, "ratio": ratio})
    return rows


def typing_scenario(config, params, repeats: int = 1) -> dict[str, Any]:
    """40 sentences of distinct lengths 3..42, as someone typing would produce.

    Bucketed: one engine warmed up front, then every sentence. Naive: ``jax.jit(apply)`` called on the
    exact length, so every new length compiles. Both in the same process, same sentences.
    """
    rng = np.random.default_rng(0)
    lengths = list(range(3, 43))
    rng.shuffle(lengths)
    sentences = [rng.integers(3, config.vocab_size, size=n).astype(np.int32) for n in lengths]

    engine = InferenceEngine(config)
    start = time.perf_counter()
    engine.warmup(params, tuple(b for b in engine.buckets if b <= 64))
    warmup_s = time.perf_counter() - start
    traces_before = engine.stats.traces
    bucket_times = []
    for ids in sentences:
        t0 = time.perf_counter()
        engine.run(params, ids)
        bucket_times.append(time.perf_counter() - t0)
    bucket_compiles = engine.stats.traces - traces_before

    model = build_model(config)
    naive_traces = []

    def naive_forward(params, ids, mask):
        naive_traces.append(ids.shape)
        return model.apply(params, None, ids, mask)

    naive = jax.jit(naive_forward)
    naive_times = []
    for ids in sentences:
        t0 = time.perf_counter()
        jax.device_get(naive(params, jnp.asarray(ids[None]), jnp.ones((1, len(ids)), bool)))
        naive_times.append(time.perf_counter() - t0)

    return {
        "sentences": len(sentences),
        "bucketed_warmup_s": warmup_s,
        "bucketed_total_ms": sum(bucket_times) * 1e3,
        "bucketed_max_call_ms": max(bucket_times) * 1e3,
        "bucketed_median_call_ms": float(np.median(bucket_times) * 1e3),
        "bucketed_compiles": bucket_compiles,
        "naive_total_ms": sum(naive_times) * 1e3,
        "naive_max_call_ms": max(naive_times) * 1e3,
        "naive_compiles": len(naive_traces),
        "naive_over_bucketed_total": sum(naive_times) / sum(bucket_times),
    }


_COLD_START = """
import time, sys
start = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from explorer.model.checkpoint import load_default
from explorer.model.inference import InferenceEngine, enable_compilation_cache, use_synchronous_dispatch
from explorer.pipeline import run_text
enable_compilation_cache(sys.argv[2])
use_synchronous_dispatch()
bundle, _ = load_default()
run = run_text(bundle, InferenceEngine(bundle.config), "The dogs near the table run.")
print(time.perf_counter() - start)
"""


def cold_start() -> dict[str, float]:
    """Seconds from a new Python process to the first inspected sentence, without and with the disk cache."""
    with tempfile.TemporaryDirectory() as cache:
        times = []
        for _ in range(2):  # first run fills the persistent compilation cache, the second reads it
            out = subprocess.run(
                [sys.executable, "-c", _COLD_START, str(ROOT), cache],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return {"empty_cache_s": times[0], "warm_disk_cache_s": times[1]}


def run_all(quick: bool = False, model: str = "default") -> dict[str, Any]:
    """The whole inference benchmark for the default model; for a pretrained one (``minilm``, a folder, a Hub
    id: tens to hundreds of times the default's arithmetic) the forward latency only."""
    use_synchronous_dispatch()  # as the app and the CLI run
    if model != "default":
        from explorer.model.pretrained import load_model

        bundle, notice = load_model(model), None
    else:
        bundle, notice = load_default()
    config, params = bundle.config, bundle.params
    engine = InferenceEngine(config)
    report: dict[str, Any] = {
        "model": bundle.source,
        "config": config.to_dict(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
    }
    if notice:
        report["notice"] = notice
    lengths = tuple(n for n in (32, 128, 512) if n <= config.max_len)  # a model's longest input bounds them
    report["forward"] = forward_latency(engine, params, lengths, repeats=60 if quick else 400)
    report["forward_ms"] = {str(row["tokens"]): row["forward_ms"] for row in report["forward"]}
    if model != "default":
        return report
    report["typing"] = typing_scenario(config, params)
    report["cold_start"] = cold_start()
    forward_32 = next(r for r in report["forward"] if r["tokens"] == 32)
    typing = report["typing"]
    report["targets"] = {
        "zero_compiles_while_typing": typing["bucketed_compiles"] == 0,
        f"max_typing_call_le_{TARGET_MAX_TYPING_CALL_MS}ms": typing["bucketed_max_call_ms"]
        <= TARGET_MAX_TYPING_CALL_MS,
        f"forward_32_le_{TARGET_FORWARD_32_MS}ms": forward_32["forward_ms"] <= TARGET_FORWARD_32_MS,
    }
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"model: {report['model']}  ({report['cpu_count']} CPUs, {', '.join(report['devices'])})"]
    if "notice" in report:
        lines.append(f"note: {report['notice']}")
    lines.append("forward with all intermediates, batch 1 (median ms):")
    lines.append("  tokens   device   +copy to host & slice")
    for row in report["forward"]:
        lines.append(f"  {row['tokens']:>6}   {row['forward_ms']:6.3f}   {row['forward_to_host_ms']:6.3f}")
    if "typing" not in report:
        return "\n".join(lines)
    t = report["typing"]
    lines += [
        f"typing: {t['sentences']} sentences of lengths 3..42",
        f"  bucketed: total {t['bucketed_total_ms']:.1f} ms, median {t['bucketed_median_call_ms']:.2f} ms, "
        f"max {t['bucketed_max_call_ms']:.2f} ms, compiles {t['bucketed_compiles']} "
        f"(after a {t['bucketed_warmup_s']:.2f} s warm-up of buckets <= 64)",
        f"  naive per-length jit: total {t['naive_total_ms']:.1f} ms, max {t['naive_max_call_ms']:.1f} ms, "
        f"compiles {t['naive_compiles']}",
        f"  naive / bucketed total time: {t['naive_over_bucketed_total']:.0f}x",
    ]
    c = report["cold_start"]
    lines.append(
        f"cold start to first result: {c['empty_cache_s']:.2f} s (empty compile cache), "
        f"{c['warm_disk_cache_s']:.2f} s (warm disk cache)"
    )
    lines.append("targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in report["targets"].items()))
    return "\n".join(lines)
