"""Training speed over one process against N local processes (``train --processes N``), alternating.

  PYTHONPATH=. .venv/bin/python bench/bench_processes.py [--processes 2] [--rounds 3] [--setups mlm reverse] [--json]

Each round runs ``python -m explorer train`` once in one process and once over N processes on this
machine (a free loopback port; each process gets an equal share of the cores as its CPU devices, so the
batch is split the same number of ways in both), which of the two goes first alternating from round to
round, for two setups: mlm on English with the default model (batch 32 x 64 tokens) and reverse with its
default toy model. It reports each run's steps/s (the CLI summary's, which leaves out calls that compile),
wall time and the CPU time of all its processes, the load average after each round, and per setup the
median ratios N-process / one-process of runs taken side by side: this shared machine's speed drifts by
tens of percent over minutes, so only such a ratio means anything. glibc's malloc thresholds are set as
the Makefile sets them.

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "536870912"}  # as the Makefile
SETUPS = {
    "mlm": ["--task", "mlm", "--steps", "200", "--eval-every", "1000"],
    "reverse": ["--task", "reverse", "--steps", "400", "--eval-every", "1000"],
}


def run(flags: list[str], folder: Path) -> dict:
    env = {**os.environ, **MALLOC_ENV, "PYTHONPATH": str(ROOT)}
    out = folder / "bench.safetensors"
    command = [sys.executable, "-m", "explorer", "train", *flags, "--json", "--out", str(out)]
    started, cpu = time.perf_counter(), cpu_seconds()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
    summary = json.loads(result.stdout)
    return {
        "steps_per_second": summary["steps_per_second"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(cpu_seconds() - cpu, 1),  # every process of the command, compiling included
        "processes": summary["processes"],
        "devices": summary["devices"],
    }


def cpu_seconds() -> float:
    """CPU time used so far by this script's finished child processes (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def median_ratio(rows: list[dict], key: str) -> float:
    """The median over rounds of the N-process run's ``key`` over the one-process run's."""
    return round(statistics.median(row["several"][key] / row["one"][key] for row in rows), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {"load_before": load(), "processes": args.processes, "setups": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.setups:
            flags = SETUPS[name]
            rows = []
            for round_ in range(args.rounds):
                # Which goes first alternates, so a machine that speeds up or slows down over a round does
                # not favour one side.
                variants = {"one": flags, "several": [*flags, "--processes", str(args.processes)]}
                order = ["one", "several"] if round_ % 2 == 0 else ["several", "one"]
                row = {key: run(variants[key], Path(folder)) for key in order}
                row["load"] = load()
                rows.append(row)
                if not args.json:
                    print(
                        f"{name}: 1 process {row['one']}  |  {args.processes} processes {row['several']}  "
                        f"(load {row['load']})",
                        flush=True,
                    )
            report["setups"][name] = {
                "runs": rows,
                "median_ratio_steps_per_second": median_ratio(rows, "steps_per_second"),
                "median_ratio_cpu_seconds": median_ratio(rows, "cpu_seconds"),
            }
    report["load_after"] = load()
    if args.json:
        print(json.dumps(report))
        return
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    for name, setup in report["setups"].items():
        print(
            f"{name}: {args.processes} processes / 1 process (medians of rounds): steps/s "
            f"{setup['median_ratio_steps_per_second']}, CPU seconds of the command {setup['median_ratio_cpu_seconds']}"
        )


if __name__ == "__main__":
    main()
