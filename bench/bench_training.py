"""Training speed on this machine: fused (lax.scan) vs per-step dispatch, and reverse time-to-95%.

  PYTHONPATH=. .venv/bin/python bench/bench_training.py [--json] [--rounds N]

1. MLM on English, batch 32 x 64 tokens, the default model's architecture: steps/s of K steps fused into
   one compiled call vs the same jitted step called once per step, and of the data-parallel step (the
   batch split over one JAX CPU device per core, as the app trains) vs one device using every core. The
   variants alternate in one process, several rounds, and the table reports medians: this machine's
   speed drifts by tens of percent over minutes (it is shared), so only a ratio measured side by side
   means anything.
2. Reverse with its default model (``default_model_config``, as ``train --task reverse`` and the Train
   page build it: d_model 64, 2 layers, 4 heads, its own output head, the toy vocabulary): wall time until
   held-out token accuracy reaches 95%, counted from the first training step (compiling excluded) and from
   the start (compiling included), and how close each head's attention is to the ideal anti-diagonal then.

Before anything is imported, the script re-executes itself with glibc's malloc thresholds raised (as
the Makefile exports them) when they are missing: a training step's scratch buffers pass the default
32 MB mmap threshold, and without the raise each call maps and page-faults fresh memory, which is a
cost of the environment, not of the step. The report says whether it re-executed.

The machine's load average is printed before and after: this 2-core machine is shared, and a load of
4-6 (other engineers' tests and trainings) roughly halves every number here.

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "536870912"}  # as the Makefile
REEXEC_FLAG = "EXPLORER_BENCH_REEXECUTED"
if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
    # glibc reads these once at process start, so setting them now would do nothing: start again.
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV, REEXEC_FLAG: "1"})

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from explorer.model.config import ModelConfig  # noqa: E402
from explorer.text.texts import named_text, token_streams, vocab_for  # noqa: E402
from explorer.training.config import default_model_config, default_train_config  # noqa: E402
from explorer.training.parallel import compile_functions, training_devices  # noqa: E402
from explorer.training.runner import Trainer  # noqa: E402
from explorer.training.step import init_state  # noqa: E402

FUSED_CHUNKS = (10, 50)  # steps per compiled call in the fused variants
STEPS_PER_ROUND = 100  # steps each variant runs per round


def bench_fused_vs_per_step(rounds: int) -> dict:
    model_config = ModelConfig()  # the default (English) model's architecture
    text = named_text("english")
    train, _ = token_streams(text, vocab_for("english", model_config.vocab_size))
    source = jax.device_put(train)  # the corpus stays on the device; batches are sampled there
    train_config = default_train_config("mlm", batch_size=32, seq_len=64, steps=100_000)
    devices = training_devices(train_config.batch_size)
    parallel = compile_functions(model_config, train_config)  # one config: the chunk length is a shape
    single = compile_functions(model_config, train_config, devices=1)
    # name -> (compiled functions, steps per call or None for the per-step loop)
    variants = {f"fused_{chunk}": (parallel, chunk) for chunk in FUSED_CHUNKS}
    variants[f"fused_{FUSED_CHUNKS[-1]}_one_device"] = (single, FUSED_CHUNKS[-1])
    variants["per_step"] = (parallel, None)

    def run(functions, chunk, state, steps):
        if chunk is None:
            for _ in range(steps):
                state, metrics = functions.step(state, source)
            jax.device_get(metrics["loss"])  # the per-step loop reads once, at the end
            return state
        active = jnp.ones(chunk, bool)
        for _ in range(steps // chunk):
            state, metrics = functions.chunk(state, source, active)
            jax.device_get(metrics["loss"])  # a real loop reads metrics once per chunk
        return state

    state = init_state(model_config, train_config)
    compile_seconds = {}
    for name, (functions, chunk) in variants.items():
        started = time.perf_counter()
        state = run(functions, chunk, state, chunk or 1)
        jax.block_until_ready(state)
        compile_seconds[name] = round(time.perf_counter() - started, 2)

    speeds: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds + 1):  # alternate variants so that drifts in machine speed hit all alike
        for name, (functions, chunk) in variants.items():
            started = time.perf_counter()
            state = run(functions, chunk, state, STEPS_PER_ROUND)
            if round_:  # the first round warms up (its first calls ran at a third of the later speed)
                speeds[name].append(STEPS_PER_ROUND / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    best = max((name for name in medians if name.startswith("fused") and "one_device" not in name), key=medians.get)
    return {
        "config": f"mlm on English, batch 32 x 64 tokens, the default model ({model_config})",
        "devices": devices,
        "rounds": rounds,
        "steps_per_s": {name: round(value, 1) for name, value in medians.items()},
        "per_round": {name: [round(v, 1) for v in values] for name, values in speeds.items()},
        "best_fused": best,
        "ratio": round(medians[best] / medians["per_step"], 2),
        "data_parallel_ratio": round(
            medians[f"fused_{FUSED_CHUNKS[-1]}"] / medians[f"fused_{FUSED_CHUNKS[-1]}_one_device"], 2
        ),
        "compile_seconds": compile_seconds,
    }


def bench_reverse(target: float = 0.95, budget_s: float = 120.0) -> dict:
    model_config = default_model_config("reverse")  # what `train --task reverse` and the Train page build
    chunk = 20
    train_config = default_train_config("reverse", steps=5_000, steps_per_chunk=chunk, eval_every=chunk)
    started = time.perf_counter()
    trainer = Trainer(model_config, train_config)
    reached: dict = {}

    def watch(status) -> None:
        if reached or not status.eval_accuracy or time.perf_counter() - started > budget_s:
            if not reached and time.perf_counter() - started > budget_s:
                trainer.stop(timeout=0)
            return
        if status.eval_accuracy[-1] >= target:
            reached.update(
                step=status.step,
                accuracy=status.eval_accuracy[-1],
                wall_s=time.perf_counter() - started,
                training_s=status.elapsed_seconds,
                closeness=status.closeness.round(3).tolist() if status.closeness is not None else None,
            )
            trainer.stop(timeout=0)  # called from the loop's own thread: just sets the flag

    trainer.run(watch)
    status = trainer.status()
    result = {
        "config": f"reverse, 16 symbols x 16 positions, batch 32, the task's default model ({model_config})",
        "target_accuracy": target,
        "reached": bool(reached),
        "steps_per_s": round(status.steps_per_second, 1),
    }
    if reached:
        result.update(
            step=reached["step"],
            accuracy=round(reached["accuracy"], 4),
            training_seconds=round(reached["training_s"], 1),
            seconds_including_compile=round(reached["wall_s"], 1),
            attention_closeness=reached["closeness"],
            best_head_closeness=max(max(row) for row in reached["closeness"]) if reached["closeness"] else None,
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-reverse", action="store_true", help="only the fused vs per-step comparison")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    report = {
        "machine": {"cpus": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend()},
        "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "reexecuted_for_malloc_env": os.environ.get(REEXEC_FLAG) == "1",
        "fused_vs_per_step": bench_fused_vs_per_step(args.rounds),
    }
    report["load_average"] = {"before": round(load_before, 2), "after_mlm": round(os.getloadavg()[0], 2)}
    if not args.skip_reverse:
        report["reverse_time_to_95"] = bench_reverse()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    speed, reverse = report["fused_vs_per_step"], report.get("reverse_time_to_95")
    print(
        f"Training benchmark ({report['machine']['cpus']} CPUs, jax {report['machine']['jax']}, "
        f"MALLOC_MMAP_THRESHOLD_={report['malloc_mmap_threshold']}"
        f"{', set by re-executing this script' if report['reexecuted_for_malloc_env'] else ''})"
    )
    print(
        f"load average {report['load_average']['before']} before, {report['load_average']['after_mlm']} after "
        f"the MLM comparison (a loaded machine slows every variant; compare ratios)"
    )
    print()
    print(f"{speed['config']}")
    print(f"  {'variant':<44} {'steps/s (median)':>17}   per round")
    for name, value in speed["steps_per_s"].items():
        if name == "per_step":
            label = f"per-step: one jitted call per step, {speed['devices']} devices"
        else:
            devices = 1 if name.endswith("one_device") else speed["devices"]
            label = f"fused: lax.scan, {name.split('_')[1]} steps per call, {devices} device{'s' * (devices > 1)}"
        print(f"  {label:<44} {value:>17}   {speed['per_round'][name]}")
    print(f"  {'ratio ' + speed['best_fused'] + ' / per-step':<44} {speed['ratio']:>17}")
    print(f"  {'ratio data parallel / one device (fused)':<44} {speed['data_parallel_ratio']:>17}")
    print(f"  compile seconds: {speed['compile_seconds']}")
    if reverse is None:
        return 0
    print()
    print(f"{reverse['config']}")
    if reverse["reached"]:
        print(
            f"  held-out accuracy {reverse['accuracy']:.1%} at step {reverse['step']}: "
            f"{reverse['training_seconds']} s of training ({reverse['seconds_including_compile']} s incl. compile), "
            f"{reverse['steps_per_s']} steps/s"
        )
        print(f"  attention closeness to the anti-diagonal per layer/head: {reverse['attention_closeness']}")
    else:
        print(f"  did not reach {reverse['target_accuracy']:.0%} within the time budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
