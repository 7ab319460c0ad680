"""Browser benchmark: what a person waits for, measured in headless chromium against `streamlit run`.

1. Cold start: from launching `streamlit run app.py` to the first page being interactive (title shown,
   no rerun running), with an empty JAX compilation cache and again with the cache filled by that run.
2. Edit latency on the Attention page: from committing an edited ~20-token sentence (Ctrl+Enter) to the
   last change in any chart on the page, after the app is warm.
3. With ``--sessions N``, a shared server instead: N browser sessions, one of which trains on the Train
   page (a long run of the default setup) while the others edit on the Attention page. Rounds rotate
   between nobody training, one training with its live view open, and the same training while its
   session is on another page (this machine is shared: only a side-by-side ratio means anything); the
   report gives the editors' median latency in each condition.

    .venv/bin/python bench/bench_browser.py [--edits N] [--json] [--model minilm] [--skip-cold]
    .venv/bin/python bench/bench_browser.py --sessions 3 [--edits N] [--rounds R] [--json]
    .venv/bin/python bench/bench_browser.py --against ../other-checkout [--model minilm] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import re
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


def open_attention(page, url: str, model: str | None = None) -> None:
    page.goto(f"{url}/attention" + (f"?model={model}" if model else ""))
    page.get_by_role("heading", name="Attention").wait_for()
    wait_idle(page)
    if model:  # the model's engine compiles its buckets in the background: let it finish first
        wait_idle(page, quiet_ms=20_000, timeout_s=120)
    page.evaluate(CHART_OBSERVER_JS)


def edit_once(page, i: int) -> float:
    """Milliseconds from committing edit ``i`` to the last chart change it caused."""
    box = page.get_by_label("Text")
    box.fill(SENTENCE.format(subject=SUBJECTS[i % len(SUBJECTS)]) + " " * (i % 2))
    start = page.evaluate("() => performance.now()")
    box.press("Control+Enter")
    page.wait_for_function(f"() => window.__lastChartMutation > {start}")
    wait_idle(page, quiet_ms=300)
    return page.evaluate("() => window.__lastChartMutation") - start


def edit_latency(edits: int, model: str | None = None, root: str | None = None) -> list[float]:
    with AppServer(root=root) as server, browser_page() as page:
        page.set_default_timeout(120_000)
        open_attention(page, server.url, model)
        # The first two edits warm the browser's own caches and are dropped.
        return [edit_once(page, i) for i in range(edits + 2)][2:]


CONDITIONS = ("idle", "training", "training_elsewhere")


def go_to(page, title: str) -> None:
    """Switches page (while a training runs, its fragments keep the page changing: no wait for quiet)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for()
    page.wait_for_timeout(1000)


def shared_server(sessions: int, edits: int, rounds: int) -> dict[str, list[float]]:
    """Editors' latencies in rotating rounds of three conditions: nobody training; one session training
    and watching its live view on the Train page; the same training while that session is on another page
    (which separates the cost of the training itself from the cost of drawing its live view)."""
    latencies: dict[str, list[float]] = {condition: [] for condition in CONDITIONS}
    with AppServer() as server, browser_page() as trainer_page:
        trainer_page.set_default_timeout(180_000)
        browser = trainer_page.context.browser
        editors = []
        for _ in range(sessions - 1):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            open_attention(page, server.url)
            for i in range(2):  # warms the browser's caches
                edit_once(page, i)
            editors.append(page)
        trainer_page.goto(f"{server.url}/train")
        trainer_page.get_by_role("heading", name="Train").first.wait_for()
        wait_idle(trainer_page)
        for round_ in range(rounds):
            shift = round_ % len(CONDITIONS)
            for condition in CONDITIONS[shift:] + CONDITIONS[:shift]:
                if condition != "idle":
                    trainer_page.get_by_label("Steps").fill("50000")  # runs well past the round
                    trainer_page.get_by_label("Steps").press("Enter")
                    # Play resumes the run paused at the end of the last round.
                    trainer_page.get_by_role("button", name="Play", exact=True).click()
                    # Steady training, past its first chunk (the compile), as a learner would watch it.
                    trainer_page.get_by_text(re.compile(r"Step [1-9]\d* of 50000 · running")).wait_for()
                    if condition == "training_elsewhere":
                        go_to(trainer_page, "Tokens")
                for i in range(edits):
                    for page in editors:
                        latencies[condition].append(edit_once(page, i))
                if condition != "idle":
                    if condition == "training_elsewhere":
                        go_to(trainer_page, "Train")
                    trainer_page.get_by_role("button", name="Pause", exact=True).click()
                    trainer_page.get_by_text(re.compile(r"· paused")).first.wait_for()
                    wait_idle(trainer_page)
    return latencies


def against(other: str, edits: int, rounds: int, model: str | None) -> dict[str, list[float]]:
    """Edit latency of this checkout's app and another's (``other``: a directory with its own app.py and
    .venv link), in alternating rounds within one run (whichever went second goes first next round)."""
    sides = [("this", None), ("other", other)]
    latencies: dict[str, list[float]] = {"this": [], "other": []}
    for round_ in range(rounds):
        for name, root in sides if round_ % 2 == 0 else sides[::-1]:
            latencies[name] += edit_latency(edits, model, root)
    return latencies


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "p90": sorted(values)[int(0.9 * (len(values) - 1))],
        "max": max(values),
        "samples": [round(v, 1) for v in values],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", choices=["minilm"], help="edit on the Attention page of this model instead")
    parser.add_argument("--skip-cold", action="store_true", help="measure only the edit latency")
    parser.add_argument("--sessions", type=int, help="a shared server: this many sessions, one of them training")
    parser.add_argument("--rounds", type=int, default=4, help="with --sessions or --against: rounds")
    parser.add_argument("--against", metavar="DIR", help="edit latency of this app and the one in DIR, alternating")
    args = parser.parse_args()
    if args.against:
        both = against(args.against, args.edits, args.rounds, args.model)
        report = {name: summary(values) for name, values in both.items()}
        report["ratio_of_medians"] = report["this"]["median"] / report["other"]["median"]
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            for name in ("this", "other"):
                r = report[name]
                print(f"{name:5s} median {r['median']:.0f} ms, p90 {r['p90']:.0f} ms ({len(both[name])} edits)")
            print(f"this / other (medians): {report['ratio_of_medians']:.2f}")
        return 0
    if args.sessions:
        if args.sessions < 2:
            parser.error("--sessions needs at least 2: one training, the others editing")
        shared = shared_server(args.sessions, args.edits, args.rounds)
        report = {condition: summary(values) for condition, values in shared.items()}
        report["ratio_of_medians"] = {
            condition: report[condition]["median"] / report["idle"]["median"] for condition in CONDITIONS[1:]
        }
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(
                f"{args.sessions} sessions, edits on the Attention page in {args.sessions - 1} of them "
                f"({len(shared['idle'])} per condition, alternating rounds):"
            )
            for condition in CONDITIONS:
                r = report[condition]
                ratio = f" ({report['ratio_of_medians'][condition]:.2f}x idle)" if condition != "idle" else ""
                print(
                    f"  {condition:18s} median {r['median']:.0f} ms{ratio}, p90 {r['p90']:.0f} ms, "
                    f"max {r['max']:.0f} ms"
                )
        return 0
    cold = warm_cache = {"interactive_s": float("nan"), "healthy_s": float("nan")}
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            cold = first_interactive(cache)
            warm_cache = first_interactive(cache)
    latencies = edit_latency(args.edits, args.model)
    report = {
        "cold_start_empty_cache": cold,
        "cold_start_warm_disk_cache": warm_cache,
        "edit_latency_ms": summary(latencies),
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
