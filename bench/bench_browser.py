"""Browser benchmark: what a person waits for, measured in headless chromium against `streamlit run`.

1. Cold start: from launching `streamlit run app.py` to the first page being interactive (title shown,
   no rerun running), with an empty JAX compilation cache and again with the cache filled by that run.
2. Edit latency on the Attention page: from committing an edited ~20-token sentence (Ctrl+Enter) to the
   last change in any chart on the page, after the app is warm.

    .venv/bin/python bench/bench_browser.py [--edits N] [--json] [--model minilm] [--skip-cold]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.appserver import CHART_OBSERVER_JS, AppServer, browser_page, wait_idle  # noqa: E402

# Sentences of about 20 cl100k tokens from the bundled corpus's words, so the trained model knows them.
SUBJECTS = ["The teachers", "The dog", "The farmers", "The girl", "The kings", "The doctor", "The students", "The boy"]
SENTENCE = "{subject} near the old house said that the keys were in the box by the door and she left."


def first_interactive(cache_dir: str) -> dict[str, float]:
    """Seconds from launching `streamlit run` to the first page being interactive.

    The browser is started first, so its own start-up (~2 s here) is not counted against the app.
    """
    with browser_page() as page:
        page.set_default_timeout(120_000)
        server = AppServer(env={"EXPLORER_JAX_CACHE": cache_dir})
        server.start()
        try:
            healthy = server.wait_healthy()
            page.goto(server.url)
            page.get_by_role("heading", name="Tokens", exact=True).wait_for()
            page.get_by_label("Text").wait_for()
            wait_idle(page, quiet_ms=300)
            # The page became interactive at its last change, not when the quiet period ended.
            settled_ms = page.evaluate("() => performance.timeOrigin + window.__lastAnyMutation")
            interactive = settled_ms / 1000 - server.started_wall
        finally:
            server.stop()
    return {"healthy_s": healthy, "interactive_s": interactive}


def edit_latency(edits: int, model: str | None = None) -> list[float]:
    latencies = []
    with AppServer() as server, browser_page() as page:
        page.set_default_timeout(120_000)
        page.goto(f"{server.url}/attention" + (f"?model={model}" if model else ""))
        page.get_by_role("heading", name="Attention").wait_for()
        wait_idle(page)
        if model:  # the model's engine compiles its buckets in the background: let it finish first
            wait_idle(page, quiet_ms=20_000, timeout_s=120)
        page.evaluate(CHART_OBSERVER_JS)
        box = page.get_by_label("Text")
        for i in range(edits + 2):  # the first two edits warm the browser's own caches and are dropped
            box.fill(SENTENCE.format(subject=SUBJECTS[i % len(SUBJECTS)]) + " " * (i % 2))
            start = page.evaluate("() => performance.now()")
            box.press("Control+Enter")
            page.wait_for_function(f"() => window.__lastChartMutation > {start}")
            wait_idle(page, quiet_ms=300)
            last = page.evaluate("() => window.__lastChartMutation")
            if i >= 2:
                latencies.append(last - start)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", choices=["minilm"], help="edit on the Attention page of this model instead")
    parser.add_argument("--skip-cold", action="store_true", help="measure only the edit latency")
    args = parser.parse_args()
    cold = warm_cache = {"interactive_s": float("nan"), "healthy_s": float("nan")}
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            cold = first_interactive(cache)
            warm_cache = first_interactive(cache)
    latencies = edit_latency(args.edits, args.model)
    report = {
        "cold_start_empty_cache": cold,
        "cold_start_warm_disk_cache": warm_cache,
        "edit_latency_ms": {
            "median": statistics.median(latencies),
            "p90": sorted(latencies)[int(0.9 * (len(latencies) - 1))],
            "max": max(latencies),
            "samples": [round(v, 1) for v in latencies],
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        e = report["edit_latency_ms"]
        print(
            f"streamlit run -> first interactive page: {cold['interactive_s']:.2f} s with an empty compile cache "
            f"(server healthy after {cold['healthy_s']:.2f} s), {warm_cache['interactive_s']:.2f} s with a warm one"
        )
        print(
            f"Attention page, edit -> every chart updated ({len(latencies)} edits of a ~20-token sentence): "
            f"median {e['median']:.0f} ms, p90 {e['p90']:.0f} ms, max {e['max']:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
