"""Training in a worker process (explorer/training/workers.py) against training in the caller's process.

  PYTHONPATH=. .venv/bin/python bench/bench_workers.py [--json] [--polls N]

1. Start to first loss point for the Train page's default setup (reverse, d_model 64, 2 layers, 4 heads):
   building the trainer, then from Play until the status shows a loss. In a pre-started worker with JAX's
   persistent compilation cache filled by an earlier run, and in this process (the cache filled too, JAX
   already imported, as in a warm web server), and in a worker that compiled this setup when it started
   (``TrainingPool(warm_up=...)``, as the app's pool does).
2. The Train page's polling while a training runs: one ``status()`` and one ``snapshot()`` twice a
   second, over the worker's pipe (pickled) and in-process, with the pickled sizes.

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def page_defaults():
    """The Train page's default setup (``LiveSettings``, where the page and the app's pool read it)."""
    from explorer.training.config import LiveSettings

    settings = LiveSettings()
    return settings.model_config(), settings.train_config()


def first_loss(make, model, train) -> dict[str, float]:
    started = time.perf_counter()
    trainer = make(model, train)
    built = time.perf_counter()
    trainer.start()
    while not trainer.status().loss:
        time.sleep(0.01)
    shown = time.perf_counter()
    trainer.stop()
    return {"build_s": built - started, "start_to_first_loss_s": shown - built}


def polling(trainer, polls: int) -> dict[str, float]:
    """Median ms of the page's two calls per tick, while ``trainer`` trains."""
    status_ms, snapshot_ms = [], []
    for _ in range(polls):
        t0 = time.perf_counter()
        status = trainer.status()
        t1 = time.perf_counter()
        snapshot = trainer.snapshot()
        t2 = time.perf_counter()
        status_ms.append((t1 - t0) * 1e3)
        snapshot_ms.append((t2 - t1) * 1e3)
        time.sleep(0.5)
    return {
        "status_ms": statistics.median(status_ms),
        "snapshot_ms": statistics.median(snapshot_ms),
        "status_kb": len(pickle.dumps(status)) / 1e3,
        "snapshot_kb": len(pickle.dumps(snapshot)) / 1e3,
        "steps_at_end": status.step,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()

    from explorer.model.inference import enable_compilation_cache
    from explorer.training.runner import Trainer
    from explorer.training.workers import TrainingPool

    enable_compilation_cache()
    model, train = page_defaults()
    long_run = train.replace(steps=1_000_000)
    load_before = os.getloadavg()[0]
    results: dict[str, dict] = {}

    pool = TrainingPool(max_trainings=1, workers=1)
    pool.wait_ready()
    # Fills the persistent compilation cache; the long run shares its programs (the step count is an input).
    first_loss(pool.trainer, model, train)
    pool.shutdown()
    pool = TrainingPool(max_trainings=1, workers=1)  # a fresh process: only the disk cache is warm
    pool.wait_ready()
    results["first_loss_worker"] = first_loss(pool.trainer, model, train)
    results["first_loss_in_process"] = first_loss(Trainer, model, train)
    warm = TrainingPool(max_trainings=1, workers=1, warm_up=(model, train))
    warm.wait_ready(warmed=True)
    results["first_loss_warmed_worker"] = {
        **first_loss(warm.trainer, model, train),
        "warm_up_s": warm.warm_up_reports()[0][0],
    }
    warm.shutdown()

    remote = pool.trainer(model, long_run)
    remote.start()
    results["polling_worker"] = polling(remote, args.polls)
    remote.stop()
    pool.shutdown()
    local = Trainer(model, long_run)
    local.start()
    results["polling_in_process"] = polling(local, args.polls)
    local.stop()
    results["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}

    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, values in results.items():
        print(f"{name:24s} " + "  ".join(f"{k} {v:.3g}" for k, v in values.items()))


if __name__ == "__main__":
    main()
