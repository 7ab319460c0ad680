"""Load benchmark of `make serve`: a class of browser sessions through HAProxy on 2 replicas.

`deploy/serve.py --replicas 2` on free loopback ports; 8 headless-chromium sessions open the app through the
proxy (HAProxy spreads them over the replicas): 6 on the Attention page, 2 on the Train page, one pinned
to each replica. Rounds alternate, in rotating order, between

- alone: one of the editors edits (Ctrl+Enter, back to back), the others stay connected and idle, nobody
  trains;
- class: the 6 editors edit at once, each every ``--period`` seconds with the editors evenly staggered
  (their edits overlap), nobody training;
- class_training: the same while both trainers train the Train page's default setup, their live view open;
- class_training_elsewhere: the same trainings while their sessions are on another page (which separates
  the cost of training from the cost of drawing its live view);

and each edit's latency is measured in its page, as bench/bench_browser.py does: from Ctrl+Enter to the
last change of any chart it caused. The report gives p50 and p90 of each condition and their ratios, the
resident memory (RSS) of each replica's server process and of its training workers, the memory one more
session costs a server, how many sessions a replica would hold within 24 GB, and the cores each part kept
busy in each condition (servers, training workers, the browsers, everything else on the machine). This
machine is shared and the browsers run on its 2 cores too: only the ratios measured in one run mean
anything.

    PYTHONPATH=. .venv/bin/python bench/bench_serve.py [--rounds R] [--edits N] [--period S] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.appserver import (  # noqa: E402
    CHART_OBSERVER_JS,
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE_JS,
    INSTALL_MUTATION_CLOCK_JS,
    wait_idle,
)
from bench.bench_browser import SENTENCE, SUBJECTS, edit_once, go_to, open_attention, summary  # noqa: E402
from bench.served import Served, rss_bytes  # noqa: E402
from deploy.serve import descendants  # noqa: E402

SESSIONS = 8
TRAINERS = 2
GIB = 1024**3
BUDGET_BYTES = 24 * GIB

# Is the edit committed at ``start`` fully drawn? Its last chart change, once the page has been quiet for
# 300 ms with no rerun running; null while it is not.
FINISHED_JS = f"""
(start) => {{
  const idle = ({IDLE_JS.strip()})();
  if (!idle || !(window.__lastChartMutation > start) || performance.now() - window.__lastAnyMutation < 300) return null;
  return window.__lastChartMutation - start;
}}
"""


def commit_edit(page, i: int) -> float:
    """Types edit ``i`` and commits it; returns its start on the page's clock (see ``FINISHED_JS``)."""
    box = page.get_by_label("Text")
    box.fill(SENTENCE.format(subject=SUBJECTS[i % len(SUBJECTS)]) + " " * (i % 2))
    start = page.evaluate("() => performance.now()")
    box.press("Control+Enter")
    return start


class Frames:
    """When the browser process sent and received each websocket frame of a page (Chrome DevTools
    Protocol, on the browser's own clock): the server's share of an edit, from the rerun request
    leaving the browser to the last message of that rerun arriving, without the page's drawing."""

    def __init__(self, page):
        self.sent: list[float] = []
        self.received: list[float] = []
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.webSocketFrameSent", lambda event: self.sent.append(event["timestamp"]))
        cdp.on("Network.webSocketFrameReceived", lambda event: self.received.append(event["timestamp"]))
        cdp.send("Network.enable")

    def mark(self) -> int:
        return len(self.sent)

    def server_ms(self, mark: int) -> float | None:
        """From the first frame sent after ``mark`` (the rerun) to the last frame received since."""
        if len(self.sent) <= mark:
            return None
        request = self.sent[mark]
        replies = [t for t in self.received if t >= request]
        return (max(replies) - request) * 1000 if replies else None


def edits_over_time(
    editors: list, frames: list[Frames], edits: int, period: float, timeout_s: float = 600.0
) -> tuple[list[float], list[float]]:
    """Every editor makes ``edits`` edits, one every ``period`` seconds (0: back to back), editors
    staggered evenly, so edits of different editors overlap. Returns every edit's latency in its page
    and its server share (ms)."""
    now = time.monotonic()
    next_at = [now + k * period / len(editors) for k in range(len(editors))]
    started: list[tuple[float, int] | None] = [None] * len(editors)
    done = [0] * len(editors)
    latencies: list[float] = []
    server: list[float] = []
    deadline = now + timeout_s
    while min(done) < edits:
        if time.monotonic() > deadline:
            raise TimeoutError(f"edits did not finish within {timeout_s:.0f} s")
        for k, page in enumerate(editors):
            if started[k] is None and done[k] < edits and time.monotonic() >= next_at[k]:
                mark = frames[k].mark()
                started[k] = (commit_edit(page, done[k]), mark)
            elif started[k] is not None:
                latency = page.evaluate(FINISHED_JS, started[k][0])
                if latency is not None:
                    latencies.append(latency)
                    share = frames[k].server_ms(started[k][1])
                    if share is not None:
                        server.append(share)
                    started[k], done[k] = None, done[k] + 1
                    next_at[k] = max(time.monotonic(), next_at[k] + period)
        time.sleep(0.02)
    return latencies, server


def set_training(page, play: bool) -> None:
    """Plays (a long run, resumed where it paused) or pauses the training on a Train page; if that fails,
    says what the page showed (and leaves a screenshot in the temp directory), not just a timeout."""
    try:
        if play:
            page.get_by_role("button", name="Play", exact=True).click(timeout=60_000)
            page.get_by_text(re.compile(r"Step [1-9]\d* of 50000 · running")).wait_for(timeout=60_000)
        else:
            page.get_by_role("button", name="Pause", exact=True).click(timeout=60_000)
            page.get_by_text(re.compile(r"· paused")).first.wait_for(timeout=60_000)
            wait_idle(page)
    except Exception as error:
        shot = Path(tempfile.gettempdir()) / "bench_serve_train.png"
        page.screenshot(path=str(shot))
        status = page.get_by_text(re.compile(r"Step \d+ of \d+")).all_inner_texts()
        alerts = page.locator('[data-testid="stAlert"], [role="dialog"]').all_inner_texts()
        raise RuntimeError(f"{'Play' if play else 'Pause'} on {page.url}: {status} {alerts} ({shot})") from error


def memory(served: Served) -> dict[str, dict[str, int]]:
    """RSS of each replica's server process and of its training workers (bytes)."""
    report = {}
    for port in served.replica_ports:
        pid = served.replica_pid(port)
        report[f"r{port}"] = {"server": rss_bytes(pid), "workers": sum(rss_bytes(p) for p in descendants(pid))}
    return report


CONDITIONS = ("alone", "class", "class_training", "class_training_elsewhere")
TRAINING = CONDITIONS[2:]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids) -> float:
    """CPU time (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (all processes, ours and others')."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def cpu_use(served: Served) -> dict[str, float]:
    """CPU seconds so far of the replicas' servers, their training workers, the browsers (chromium and
    Playwright's driver, all running here) and the whole machine."""
    servers = [served.replica_pid(p) for p in served.replica_ports]
    workers = [w for pid in servers for w in descendants(pid)]
    launcher = {served.process.pid, *descendants(served.process.pid)}
    browsers = [pid for pid in descendants(os.getpid()) if pid not in launcher]
    return {
        "servers": cpu_seconds(servers),
        "workers": cpu_seconds(workers),
        "browsers": cpu_seconds(browsers),
        "machine": machine_busy_seconds(),
        "wall": time.monotonic(),
    }


def run(rounds: int, edits: int, period: float) -> dict:
    from playwright.sync_api import sync_playwright

    # The launcher's configuration and logs stay in run_dir if anything fails (removed after a clean run).
    run_dir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    print(f"logs in {run_dir}", file=sys.stderr)
    with Served(run_dir, replicas=2, max_trainings=1) as served:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(SESSIONS)]
            # The first browser on each replica pays that server's warm-up (imports, compiles): measured
            # apart, as the memory a replica needs before any session.
            first = contexts[0].new_page()
            first.set_default_timeout(180_000)
            open_attention(first, served.url)
            second = contexts[1].new_page()
            second.set_default_timeout(180_000)
            open_attention(second, served.url)
            pinned = [served.replica_of(c) for c in contexts[:2]]
            if len(set(pinned)) != 2:
                raise RuntimeError(f"the first two browsers did not go to both replicas: {pinned}")
            for page in (first, second):
                edit_once(page, 0)
            warm = memory(served)
            editors = [first, second]
            trainers = []
            # Further sessions: HAProxy pins each to the replica with fewer connections. One trainer on
            # each replica, so both trainings run (one training at once per replica here).
            for context in contexts[2:]:
                page = context.new_page()
                page.set_default_timeout(180_000)
                page.goto(served.url + "/_stcore/health")  # gets the cookie: which replica this browser is on
                replica = served.replica_of(context)
                if len(trainers) < TRAINERS and replica not in {served.replica_of(t.context) for t in trainers}:
                    page.goto(f"{served.url}/train?steps=50000")
                    page.get_by_role("heading", name="Train").first.wait_for()
                    wait_idle(page)
                    trainers.append(page)
                else:
                    open_attention(page, served.url)
                    editors.append(page)
            if len(trainers) != TRAINERS:
                raise RuntimeError("could not place one trainer on each replica")
            for page in editors:
                page.evaluate(INSTALL_MUTATION_CLOCK_JS)
                page.evaluate(CHART_OBSERVER_JS)
                edit_once(page, 1)  # warms each page's browser caches
            frames = [Frames(page) for page in editors]
            by_replica = {r: sum(served.replica_of(p.context) == r for p in editors + trainers) for r in warm}
            samples: dict[str, list[float]] = {c: [] for c in CONDITIONS}
            server: dict[str, list[float]] = {c: [] for c in CONDITIONS}
            cpu: dict[str, dict[str, float]] = {c: {} for c in CONDITIONS}
            loads: list[float] = []
            peak = memory(served)
            for round_ in range(rounds):
                shift = round_ % len(CONDITIONS)
                for condition in CONDITIONS[shift:] + CONDITIONS[:shift]:
                    loads.append(os.getloadavg()[0])
                    if condition in TRAINING:
                        for page in trainers:
                            set_training(page, play=True)
                            if condition == "class_training_elsewhere":
                                go_to(page, "Tokens")
                    before = cpu_use(served)
                    if condition == "alone":
                        latencies, shares = edits_over_time(editors[:1], frames[:1], 2 * edits, 0.0)
                    else:
                        latencies, shares = edits_over_time(editors, frames, edits, period)
                    samples[condition] += latencies
                    server[condition] += shares
                    after = cpu_use(served)
                    for key in before:
                        cpu[condition][key] = cpu[condition].get(key, 0.0) + after[key] - before[key]
                    now = memory(served)
                    peak = {r: {k: max(peak[r][k], now[r][k]) for k in now[r]} for r in now}
                    if condition in TRAINING:
                        for page in trainers:
                            if condition == "class_training_elsewhere":
                                go_to(page, "Train")
                            set_training(page, play=False)
            browser.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    sessions_memory = {
        r: (peak[r]["server"] - warm[r]["server"]) / max(by_replica[r] - 1, 1) for r in warm
    }  # the first session's cost is in the warm figure
    per_session = max(sessions_memory.values())
    fixed = max(warm[r]["server"] + peak[r]["workers"] for r in peak)  # a replica before its sessions

    def ratios(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
        alone = summary(values["alone"])
        return {
            c: {"p50": summary(values[c])["median"] / alone["median"], "p90": summary(values[c])["p90"] / alone["p90"]}
            for c in CONDITIONS[1:]
        }

    return {
        "latency_ms": {c: summary(v) for c, v in samples.items()},
        "ratio": ratios(samples),
        "server_ms": {c: summary(v) for c, v in server.items()},
        "server_ratio": ratios(server),
        # Cores each part kept busy while a condition ran; "others" is the rest of the machine's work
        # (other users of this shared machine).
        "cores": {
            c: {
                **{k: cpu[c][k] / cpu[c]["wall"] for k in ("servers", "workers", "browsers")},
                "others": (cpu[c]["machine"] - cpu[c]["servers"] - cpu[c]["workers"] - cpu[c]["browsers"])
                / cpu[c]["wall"],
            }
            for c in CONDITIONS
        },
        "sessions_per_replica": by_replica,
        "memory_bytes": {"warm_one_session": warm, "peak": peak, "per_session": sessions_memory},
        "sessions_in_24_gb": int((BUDGET_BYTES - fixed) // per_session) if per_session > 0 else None,
        "load_average": {"min": min(loads), "max": max(loads)},
        "settings": {"rounds": rounds, "edits": edits, "period_s": period, "editors": len(editors)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds of the two conditions")
    parser.add_argument("--edits", type=int, default=6, help="edits per editor per class round (alone: twice)")
    parser.add_argument("--period", type=float, default=3.0, help="seconds between one editor's edits in class")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.rounds, args.edits, args.period)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    latency, ratio = report["latency_ms"], report["ratio"]
    print(
        f"Edit -> every chart updated on the Attention page, through HAProxy on 2 replicas "
        f"({', '.join(str(len(v['samples'])) + ' edits ' + c for c, v in latency.items())}; load average "
        f"{report['load_average']['min']:.1f}-{report['load_average']['max']:.1f}):"
    )
    editors = report["settings"]["editors"]
    names = {
        "alone": "one session alone",
        "class": f"{editors} editing, one edit each every {args.period:g} s",
        "class_training": f"the same while {TRAINERS} train (live view open)",
        "class_training_elsewhere": f"the same while {TRAINERS} train (on another page)",
    }
    for condition, name in names.items():
        r = latency[condition]
        x = f" ({ratio[condition]['p50']:.2f}x / {ratio[condition]['p90']:.2f}x)" if condition in ratio else ""
        cores = report["cores"][condition]
        r_server = report["server_ms"][condition]
        x_server = (
            f" ({report['server_ratio'][condition]['p50']:.2f}x / {report['server_ratio'][condition]['p90']:.2f}x)"
            if condition in ratio
            else ""
        )
        print(
            f"  {name:45s} p50 {r['median']:.0f} ms, p90 {r['p90']:.0f} ms{x}; server's share p50 "
            f"{r_server['median']:.0f} ms, p90 {r_server['p90']:.0f} ms{x_server}; cores busy: servers "
            f"{cores['servers']:.2f}, training {cores['workers']:.2f}, browsers {cores['browsers']:.2f}, "
            f"other work {cores['others']:.2f}"
        )
    mib = 1024**2
    for replica, m in report["memory_bytes"]["peak"].items():
        warm = report["memory_bytes"]["warm_one_session"][replica]
        print(
            f"  {replica}: {report['sessions_per_replica'][replica]} sessions; server {warm['server'] / mib:.0f} MiB "
            f"with one, {m['server'] / mib:.0f} MiB with all; training workers {m['workers'] / mib:.0f} MiB; "
            f"{report['memory_bytes']['per_session'][replica] / mib:.0f} MiB per further session"
        )
    print(f"  sessions one replica would hold in 24 GB: ~{report['sessions_in_24_gb']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
