"""Serving a class: `deploy/serve.py` (what `make serve` runs) with 2 replicas behind HAProxy, 4 browsers on one
lesson link and one training on the Train page, the training's replica killed with SIGKILL.

Checks that the browsers are spread over both replicas; that supervisord starts the killed one again within
60 s; that every browser, without being reloaded, shows the lesson's view again (same page, text, model
and choices, no exception), the ones that lost their replica reconnected through HAProxy to a live one
where a click still works on top of the restored view; that the training browser, also without a reload,
says its run is lost, keeps the run's settings, and trains again on Play; and that stopping the launcher,
even while a replica is being restarted, frees its ports and leaves none of its processes running.
"""

from __future__ import annotations

import os
import re
import signal
import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from bench.appserver import CHROMIUM, CHROMIUM_ARGS, chromium_available, exceptions_on_page, wait_idle
from bench.served import Served
from deploy.serve import descendants, haproxy_binary, port_free
from explorer.training.lesson import settings_from_params

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not chromium_available() or haproxy_binary() is None:  # `make test` installs both
    pytest.fail("chromium and haproxy are needed: run `make test` (or apt-get install chromium haproxy)", pytrace=False)

TEXT = "The dogs near the old house ran to the door."
LESSON = f"/attention?layer=2&head=3&text={quote(TEXT)}"
TRAINING = f"/train?task=reverse&steps=5000&text={quote(TEXT)}"
# pages.common.train_runs.RUN_LOST, as the page shows it (without its Markdown).
RUN_LOST = "The run in this link is no longer on the server"
BROWSERS = 4
HEAD = re.compile(r"^Layer \d+ · head \d+$")


def head_titles(page) -> list[str]:
    return page.locator('[data-testid="stPlotlyChart"] text', has_text=HEAD).all_text_contents()


def view(page) -> dict:
    """What a person sees of the lesson: the page, the text, the model, the heads drawn, the link."""
    query = parse_qs(urlsplit(page.url).query)
    return {
        "page": page.locator("h1").first.text_content().strip(),
        "text": page.get_by_label("Text").input_value(),
        "model": page.locator('[data-testid="stSidebar"]').get_by_label("Model", exact=True).input_value(),
        "heads": sorted(head_titles(page)),
        "path": urlsplit(page.url).path,
        "query": {k: v for k, v in query.items()},
        "exceptions": exceptions_on_page(page),
    }


def new_page(browser):
    """A browser context of its own (a session of its own), its page, and the websockets the page opens."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    sockets: list[dict] = []  # every websocket the page opens, with the frames that came in on it

    def opened(ws) -> None:
        record = {"frames": 0}
        sockets.append(record)
        ws.on("framereceived", lambda _: record.update(frames=record["frames"] + 1))

    page.on("websocket", opened)
    return context, page, sockets


def open_lesson(browser, url: str):
    context, page, sockets = new_page(browser)
    page.goto(url + LESSON)
    page.get_by_role("heading", name="Attention").wait_for()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length > 0")
    wait_idle(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] text')]"
        ".some(t => t.textContent === 'Layer 2 · head 3')"
    )
    # Survives only if the page is never loaded again (a reload would start a fresh document).
    page.evaluate("() => { window.__sameDocument = true; }")
    return context, page, sockets


def wait_for(condition, timeout: float, what: str, page=None):
    """Polls ``condition``; with a ``page``, waits through Playwright, which delivers the page's events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        page.wait_for_timeout(250) if page is not None else time.sleep(0.25)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


TRAINING_JS = """(lostMessage) => ({
    progress: [...document.querySelectorAll('[data-testid="stProgress"]')].map(bar => bar.innerText),
    lost: document.body.innerText.includes(lostMessage),
    exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText),
    url: window.location.href,
    sameDocument: window.__sameDocument === true,
})"""


def training_view(page) -> dict:
    """What a person sees of the Train page, read at one moment: the step its progress bar shows (None
    without a run), whether it says the link's run is lost, the run and the settings in its link."""
    seen = page.evaluate(TRAINING_JS, RUN_LOST)
    steps = [int(m.group(1)) for text in seen["progress"] if (m := re.search(r"Step (\d+) of 5000", text))]
    query = parse_qs(urlsplit(seen["url"]).query)
    # The settings the link stands for (it leaves out the defaults: the task, reverse, is one).
    settings, problems = settings_from_params({name: values[-1] for name, values in query.items()})
    assert problems == [], problems
    return {
        **seen,
        "step": max(steps) if steps else None,
        "query": query,
        "settings": (settings.task, settings.steps),
        "run": query.get("run", [None])[0],
    }


def watch_training(page, until, timeout: float, what: str) -> dict:
    """Reads the Train page every quarter second until ``until(view)``, asserting at every reading that it
    shows no exception and was never reloaded."""
    deadline = time.monotonic() + timeout
    while True:
        seen = training_view(page)
        assert seen["exceptions"] == [], seen
        assert seen["sameDocument"], "the training page was reloaded"
        if until(seen):
            return seen
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}; last seen {seen}"
        page.wait_for_timeout(250)


def start_training(browser, url: str):
    """A browser on the Train page with its settings and a text in the link; Play pressed (not waited for:
    the other browsers open while the run compiles)."""
    context, page, sockets = new_page(browser)
    page.goto(url + TRAINING)
    page.get_by_role("heading", name="Train").wait_for()
    wait_idle(page)
    page.evaluate("() => { window.__sameDocument = true; }")
    page.get_by_role("button", name="Play", exact=True).click()
    return context, page, sockets


@pytest.fixture
def served(tmp_path):
    service = Served(tmp_path / "serve", replicas=2, max_trainings=1)
    service.start()
    try:
        yield service
    finally:
        code = service.stop()
        print(service.log()[-4000:])
        assert code == 0, f"the launcher exited with {code}"


def test_a_killed_replica_comes_back_and_every_browser_keeps_its_view(served):
    from playwright.sync_api import sync_playwright

    assert served.proxy_status() == {f"r{p}": "UP" for p in served.replica_ports}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            training_context, training, training_sockets = start_training(browser, served.url)
            sessions = [open_lesson(browser, served.url) for _ in range(BROWSERS)]
            pinned = [served.replica_of(context) for context, _, _ in sessions]
            # Every browser is pinned by HAProxy's cookie, and new browsers went to both replicas.
            assert set(pinned) == {f"r{p}" for p in served.replica_ports}, pinned
            # The training runs, and its link names the run.
            before_kill = watch_training(
                training, lambda v: (v["step"] or 0) > 0 and v["run"], 240, "the training shows a step > 0 and its run"
            )
            assert before_kill["settings"] == ("reverse", 5000) and before_kill["query"]["text"] == [TEXT]
            victim = served.replica_of(training_context)  # the replica that runs the training dies
            assert victim in pinned, (victim, pinned)  # with lesson browsers on it too
            expected = view(sessions[0][1])
            assert expected["page"] == "Attention" and expected["text"] == TEXT
            assert expected["model"] == "English MLM (default)"
            assert expected["heads"] == ["Layer 2 · head 3"] and expected["query"]["head"] == ["3"]
            assert expected["exceptions"] == []
            for _, page, _ in sessions[1:]:
                assert view(page) == expected
            # Each replica started its own training workers with its first page: processes the launcher
            # must end too.
            for port in served.replica_ports:
                wait_for(lambda port=port: descendants(served.replica_pid(port)), 60, "training workers started")
            served.note_processes()

            victim_port = int(victim[1:])
            victim_pid = served.replica_pid(victim_port)
            sockets_before = [len(sockets) for _, _, sockets in sessions]
            training_sockets_before = len(training_sockets)
            os.kill(victim_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            # Read from the moment of the kill on: through its reconnection the training page never shows an
            # exception, and it says the run is lost by itself.
            lost = watch_training(
                training, lambda v: v["lost"] and v["step"] is None, 90, "the training page says its run is lost"
            )

            # supervisord starts the replica again, and HAProxy sees it healthy, within 60 s of the kill.
            wait_for(
                lambda: (
                    served.replica_pid(victim_port) not in (0, victim_pid)
                    and served.proxy_status().get(f"r{victim_port}") == "UP"
                ),
                60 - (time.monotonic() - killed_at),
                "the killed replica is running and healthy again",
            )
            served.note_processes()
            live = {f"r{p}" for p in served.replica_ports}
            for (context, page, sockets), replica, before in zip(sessions, pinned, sockets_before, strict=True):
                if replica == victim:
                    # Its websocket broke: the frontend reconnected through HAProxy (redispatched, since
                    # its replica was gone) and the replica it reached sent the page again.
                    wait_for(
                        lambda sockets=sockets, before=before: any(s["frames"] for s in sockets[before:]),
                        60,
                        "the browser reconnected and got its page from a live replica",
                        page,
                    )
                    assert served.replica_of(context) in live
                wait_idle(page)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] text')]"
                    ".some(t => t.textContent === 'Layer 2 · head 3')"
                )
                assert view(page) == expected
                assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"

            # The session on the new replica is live and started from the link: a click adds to the
            # lesson's choice instead of being lost to it.
            for (_, page, _), replica in zip(sessions, pinned, strict=True):
                if replica != victim:
                    continue
                heads = page.locator('[data-testid="stButtonGroup"]').filter(has_text="H1").first
                heads.get_by_role("button", name=re.compile(r"^H2\b")).click()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"] text')]"
                    ".some(t => t.textContent === 'Layer 2 · head 2')"
                )
                wait_idle(page)
                assert sorted(head_titles(page)) == ["Layer 2 · head 2", "Layer 2 · head 3"]
                assert parse_qs(urlsplit(page.url).query)["head"] == ["2,3"]
                assert exceptions_on_page(page) == []

            # The training browser, never reloaded, reconnected to a live replica, which has no such run: the
            # page says the run is lost, shows no step of it, and keeps its settings and text from the link.
            assert any(s["frames"] for s in training_sockets[training_sockets_before:])
            assert served.replica_of(training_context) in live
            assert lost["run"] == before_kill["run"]  # the link still names it: a reload says so again
            assert lost["settings"] == ("reverse", 5000) and lost["query"]["text"] == [TEXT]
            assert training.get_by_label("Steps").input_value() == "5000"
            assert training.get_by_label("Task", exact=True).input_value() == "reverse"
            assert training.locator('[data-testid="stCaptionContainer"]').filter(has_text="reverse:").count() == 1
            assert training.get_by_label("Text", exact=True).input_value() == TEXT
            # Play starts it again, with the link's settings, as a new run of the live replica.
            training.get_by_role("button", name="Play", exact=True).click()
            again = watch_training(
                training,
                lambda v: (v["step"] or 0) > 0 and v["run"] not in (None, before_kill["run"]) and not v["lost"],
                240,
                "the training starts again and shows a step > 0",
            )
            assert again["settings"] == ("reverse", 5000) and again["query"]["text"] == [TEXT]
            training.get_by_role("button", name="Pause", exact=True).click()
            training.get_by_role("button", name="Play", exact=True).wait_for()
            watch_training(training, lambda v: "paused" in " ".join(v["progress"]), 60, "the training is paused")

            # Stopping while a replica is being started again (killed a moment before, its training
            # workers orphaned) still ends everything.
            other_port = next(p for p in served.replica_ports if p != victim_port)
            served.note_processes()
            os.kill(served.replica_pid(other_port), signal.SIGKILL)
            wait_for(lambda: served.replica_pid(other_port) == 0, 10, "supervisord noticed the second kill")
            assert served.stop() == 0
        finally:
            browser.close()

    busy = [p for p in served.ports if not port_free(p, "0.0.0.0")]
    assert busy == [], f"ports still in use after stopping: {busy}"
    assert served.still_running() == [], "processes of the launcher still running after it stopped"
