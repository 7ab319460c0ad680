"""Live training in the browser: how soon Play shows a first step, and how soon Pause lands.

  PYTHONPATH=. .venv/bin/python bench/bench_train_page.py [--json] [--rounds N] [--warm-seconds S]

Starts the app, opens the Train page with its default setup, waits ``--warm-seconds`` (the app compiles
the default training programs in the background at start-up), then per round: Reset, Play, and the time
until the page shows a step above 0 (a first loss); then Pause, and the time until the page says
"paused", and how many steps the trainer made after the click (read from the page). Chromium's clock
times everything, including Streamlit's round trips and the live view's 0.25 s refresh.

This is a benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.appserver import AppServer, browser_page, wait_idle  # noqa: E402

PROGRESS = re.compile(r"Step (\d+) of \d+ · (\w+)")


def progress(page) -> tuple[int, str]:
    """(step, state word) from the live view's progress text."""
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    match = PROGRESS.search(text)
    return (int(match.group(1)), match.group(2)) if match else (0, "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-seconds", type=float, default=30.0)
    args = parser.parse_args()
    first_step, pause_seconds, pause_overshoot = [], [], []
    with AppServer() as server, browser_page() as page:
        page.set_default_timeout(120_000)
        page.goto(f"{server.url}/train")
        page.get_by_role("heading", name="Train").wait_for()
        wait_idle(page)
        time.sleep(args.warm_seconds)
        for _ in range(args.rounds):
            page.get_by_role("button", name="Reset", exact=True).click()
            wait_idle(page)
            started = time.perf_counter()
            page.get_by_role("button", name="Play", exact=True).click()
            while progress(page)[0] == 0:
                time.sleep(0.02)
            first_step.append(time.perf_counter() - started)
            time.sleep(2.0)
            asked, _ = progress(page)
            started = time.perf_counter()
            page.get_by_role("button", name="Pause", exact=True).click()
            while progress(page)[1] != "paused":
                time.sleep(0.02)
            pause_seconds.append(time.perf_counter() - started)
            pause_overshoot.append(progress(page)[0] - asked)
    report = {
        "setup": "the Train page's default (reverse, d_model 64, 2 layers, 4 heads, batch 32)",
        "load_average": round(os.getloadavg()[0], 2),
        "play_to_first_step_s": [round(v, 2) for v in first_step],
        "pause_to_paused_s": [round(v, 2) for v in pause_seconds],
        "steps_after_pause_click": pause_overshoot,
        "median_play_to_first_step_s": round(statistics.median(first_step), 2),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
