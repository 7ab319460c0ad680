"""AppTest of the Train page: Play, Pause, Step and Reset, a live learning rate, settings from the link,
the live views, and the trained model published to every page (but never a blown-up one by itself)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # trainings and trainer threads: seconds each

SMALL_COPY = {"train_task": "copy", "train_batch": 8, "train_layers": 1, "train_heads": 2, "train_d_model": 32}


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    from explorer.model.inference import enable_compilation_cache

    enable_compilation_cache()


def _open_train_page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    # Straight to the Train page: the default page would start compiling the inference engine.
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def _configure(at: AppTest, **values) -> None:
    """Sets widgets by key, then reruns: a real user's change reruns the page before the next click."""
    for key, value in values.items():
        widget = at.selectbox(key=key) if key == "train_task" else None
        if key == "train_steps" or key == "train_seed":
            widget = at.number_input(key=key)
        elif widget is None:
            widget = at.select_slider(key=key)
        widget.set_value(value)
    at.run()
    assert not at.exception, at.exception


def _click(at: AppTest, key: str) -> None:
    at.button(key=key).click().run()
    assert not at.exception, at.exception


def _pause(at: AppTest, trainer) -> None:
    """Clicks Pause, waits for the worker to stop after its call (on a loaded machine that can take longer
    than the click waits), and reruns as the live view does when the pause lands."""
    _click(at, "train_play")
    assert trainer.wait(timeout=60)
    at.run()
    assert not at.exception, at.exception


def _wait_for_step(trainer, step: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while trainer.status().step < step and time.monotonic() < deadline:
        time.sleep(0.05)
    assert trainer.status().step >= step, trainer.status().message


def _start_small_training(at: AppTest, steps: int) -> object:
    """Plays a tiny copy-task training on the Train page and returns its trainer."""
    _configure(at, **SMALL_COPY, train_steps=steps)
    _click(at, "train_play")
    return at.session_state["train_trainer"]


def _scrubber(at: AppTest):
    """The "Watch attention form" scrubber (its key changes while it follows the run)."""
    (scrubber,) = [s for s in at.select_slider if s.label == "Snapshot step"]
    return scrubber


def _model_label(at: AppTest) -> str:
    labels = [m.value for m in at.sidebar.markdown if "Model:" in m.value]
    assert len(labels) == 1, labels
    return labels[0]


def test_play_pause_and_a_live_learning_rate_then_the_model_is_published():
    at = _open_train_page()
    assert any("Play" in info.value for info in at.info)
    trainer = _start_small_training(at, steps=20_000)
    _wait_for_step(trainer, 40)
    assert trainer.status().state == "running", trainer.status().message
    at.run()  # run_every fragments do not tick under AppTest: rerun to draw the live view
    assert not at.exception, at.exception
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    for key in ("train_loss_chart", "train_live_attention", "train_telemetry_chart", "train_closeness_chart"):
        assert any(key in k for k in keys), (key, keys)
    assert [m.label for m in at.metric][:3] == ["Step", "Steps / s", "Train loss"]
    assert int(at.metric[0].value) >= 40
    assert at.button(key="train_play").label == "Pause"

    # The learning rate changes while it runs: the next steps apply the new peak.
    at.select_slider(key="train_lr").set_value(1e-3).run()
    assert trainer.status().peak_learning_rate == 1e-3 and trainer.status().state == "running"
    assert at.query_params["lr"] == "0.001"  # and the link keeps it

    _pause(at, trainer)
    status = trainer.status()
    assert status.state == "stopped" and status.step < 20_000
    assert at.button(key="train_play").label == "Play"
    bundle = at.session_state["model_bundle"]
    assert bundle.task == "copy" and bundle.config.d_model == 32 and bundle.info["steps"] == status.step
    assert bundle.info["train_config"]["learning_rate"] == 1e-3
    # Paused: the replay scrubber follows the latest snapshot, and the download button is there.
    assert _scrubber(at).value == status.snapshot_steps[-1]
    assert at.get("download_button")
    _click(at, "train_play")  # Play resumes where it paused
    _wait_for_step(trainer, status.step + 10)
    assert trainer.status().eval_steps[0] == 0  # the same run, continued
    _pause(at, trainer)


def test_step_makes_exactly_one_update_and_reset_reproduces_the_run():
    at = _open_train_page()
    _configure(at, **SMALL_COPY, train_steps=20_000, train_seed=3)
    for expected in (1, 2):
        _click(at, "train_step")
        trainer = at.session_state["train_trainer"]
        assert trainer.wait(timeout=90)
        status = trainer.status()
        assert status.state == "stopped" and status.step == expected and len(status.loss) == expected
        assert status.snapshot_steps[-1] == expected  # shown: evaluated and snapshotted at that step
        at.run()  # as the live view does when the step has landed
    assert int(at.metric[0].value) == 2

    # Play, pause past step 30, Reset, play again: the same seed gives the same losses.
    _click(at, "train_play")
    _wait_for_step(trainer, 30)
    _pause(at, trainer)
    first = trainer.status().loss[:30]
    _click(at, "train_reset")
    assert trainer.status().step == 0 and at.session_state["train_trainer"] is trainer
    _click(at, "train_play")
    _wait_for_step(trainer, 30)
    _pause(at, trainer)
    np.testing.assert_array_equal(trainer.status().loss[:30], first)
    # The first run's curve stays on the loss chart for comparison.
    loss_chart = next(c for c in at.get("plotly_chart") if "train_loss_chart" in c.proto.id)
    assert "earlier: copy" in loss_chart.proto.spec

    # A setting that needs a new model says so, and applies on Reset.
    _configure(at, train_layers=2)
    assert any("press **Reset**" in w.value for w in at.warning)
    _click(at, "train_reset")
    assert at.session_state["train_trainer"] is not trainer
    assert at.session_state["train_trainer"].info().model_config.num_layers == 2
    assert not any("press **Reset**" in w.value for w in at.warning)


def test_a_link_opens_the_page_set_up_and_hides_what_the_lesson_does_not_need():
    query = {"task": "sort", "lr": "0.01", "seed": "7", "layers": "1", "steps": "300", "hide": "architecture,text"}
    at = _open_train_page(query)
    assert at.selectbox(key="train_task").value == "sort"
    assert at.select_slider(key="train_lr").value == 0.01
    assert at.number_input(key="train_seed").value == 7 and at.number_input(key="train_steps").value == 300
    hidden = {"train_layers", "train_heads", "train_d_model", "train_positional", "train_layer_norm", "train_text"}
    shown = {w.key for w in [*at.selectbox, *at.select_slider, *at.number_input]}
    assert not hidden & shown, shown
    # Ready to play: the hidden settings still come from the link.
    _click(at, "train_play")
    trainer = at.session_state["train_trainer"]
    info = trainer.info()
    assert info.model_config.num_layers == 1 and info.train_config.seed == 7 and info.train_config.learning_rate == 0.01
    trainer.stop()
    # A value the page does not offer is ignored with a note, not an error page.
    bad = _open_train_page({"lr": "0.5", "heads": "many"})
    assert bad.select_slider(key="train_lr").value == 3e-3
    # Listed at the top of the page until the setting changes (not a toast that vanishes).
    notice = " ".join(w.value for w in bad.warning if "values in this link" in w.value)
    assert "lr=" in notice and "heads=" in notice
    bad.run()
    assert "lr=" in " ".join(w.value for w in bad.warning)
    bad.select_slider(key="train_lr").set_value(0.01).run()
    notice = " ".join(w.value for w in bad.warning if "values in this link" in w.value)
    assert "lr=" not in notice and "heads=" in notice


def test_blow_up_is_reported_and_never_replaces_the_model_by_itself():
    at = _open_train_page()
    default_label = _model_label(at)
    _configure(at, **{**SMALL_COPY, "train_task": "reverse"}, train_steps=400, train_lr=1e4)
    _click(at, "train_play")
    trainer = at.session_state["train_trainer"]
    assert trainer.wait(timeout=90)
    at.run()
    assert not at.exception, at.exception
    status = trainer.status()
    assert status.state == "diverged"
    assert any("blew up" in error.value for error in at.error)
    assert "model_bundle" not in at.session_state and _model_label(at) == default_label
    # The loss chart marks the non-finite loss instead of plotting it.
    loss_chart = next(c for c in at.get("plotly_chart") if "train_loss_chart" in c.proto.id)
    assert "loss not finite" in loss_chart.proto.spec
    # The user may still pick the last finite step.
    _scrubber(at).set_value(status.step).run()
    _click(at, "train_use_snapshot")
    assert at.session_state["model_bundle"].info["steps"] == status.step
    assert _model_label(at) == f"**Model:** trained here: reverse, step {status.step}"


def test_ended_training_is_published_on_whichever_page_runs_next():
    at = _open_train_page()
    default_label = _model_label(at)
    trainer = _start_small_training(at, steps=200)
    # The user leaves the Train page at once; training ends while they look at another page.
    at.switch_page("pages/tokens.py").run()
    assert not at.exception, at.exception
    assert trainer.wait(timeout=90)
    status = trainer.status()
    assert status.state == "finished", status.message
    at.switch_page("pages/attention.py").run()
    assert not at.exception, at.exception
    assert _model_label(at) == f"**Model:** trained here: copy, step {status.step}"
    assert at.session_state["model_bundle"].config.d_model == 32
    assert not any("not in this model" in w.value for w in at.warning), "the corpus text runs on the toy model"

    # Another user (session) still sees the default model: nothing is shared but cached resources.
    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    other.switch_page("pages/train.py").run()
    assert not other.exception, other.exception
    assert _model_label(other) == default_label
    assert "train_trainer" not in other.session_state

    # A model the user picks after training ended (here an earlier snapshot) is not overridden later.
    at.switch_page("pages/train.py").run()
    steps = list(trainer.snapshot_steps())
    assert len(steps) >= 2, steps
    _scrubber(at).set_value(steps[1]).run()
    # The replay shows each head's role at that step and a timeline of the roles' scores over the snapshots.
    timeline = next(c for c in at.get("plotly_chart") if "train_role_timeline" in c.proto.id)
    assert "step" in timeline.proto.spec
    assert any("train_closeness_timeline" in c.proto.id for c in at.get("plotly_chart"))
    at.run()
    assert _scrubber(at).value == steps[1]  # moved by the user: it stays there
    assert not at.button(key="train_follow").disabled
    at.button(key="train_follow").click().run()  # back to the newest snapshot …
    assert _scrubber(at).value == steps[-1] and at.button(key="train_follow").disabled
    _scrubber(at).set_value(steps[1]).run()  # … and held on a step again, by a second move
    assert _scrubber(at).value == steps[1]
    at.button(key="train_use_snapshot").click().run()
    assert not at.exception, at.exception
    chosen = f"**Model:** trained here: copy, step {steps[1]}"
    assert _model_label(at) == chosen
    at.switch_page("pages/tokens.py").run()
    assert _model_label(at) == chosen


def test_running_training_does_not_replace_the_model_until_it_ends():
    at = _open_train_page()
    default_label = _model_label(at)
    trainer = _start_small_training(at, steps=20_000)
    _wait_for_step(trainer, 20)
    at.switch_page("pages/tokens.py").run()
    assert not at.exception, at.exception
    assert trainer.status().state == "running"
    assert _model_label(at) == default_label
    assert any("Training on the Train page" in c.value for c in at.sidebar.caption)
    trainer.stop()  # as if the user had paused it on the Train page in another tab
    at.run()  # the sidebar's run_every fragment would rerun the page; AppTest needs a nudge
    assert not at.exception, at.exception
    assert _model_label(at) == f"**Model:** trained here: copy, step {trainer.status().step}"
    assert not any("Training on the Train page" in c.value for c in at.sidebar.caption)


def test_english_masked_lm_trains_on_the_page_and_its_loss_chart_shows_the_unigram_baseline():
    at = _open_train_page()
    _configure(at, train_task="mlm")
    assert at.selectbox(key="train_text").value == "english"  # the default text of the text tasks
    _configure(at, train_steps=40, train_layers=1, train_d_model=32)
    _click(at, "train_play")
    trainer = at.session_state["train_trainer"]
    assert trainer.wait(timeout=120) and trainer.status().state == "finished", trainer.status().message
    assert trainer.vocab.closed and trainer.text.name == "english" and 6 < trainer.unigram_loss < 9
    at.run()
    loss_chart = next(c for c in at.get("plotly_chart") if "train_loss_chart" in c.proto.id)
    assert "unigram baseline" in loss_chart.proto.spec
    assert "epoch" in at.get("progress")[0].proto.text


def test_english_text_without_the_corpus_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))  # an empty data folder: no corpus here
    at = _open_train_page()
    _configure(at, train_task="mlm")
    _click(at, "train_play")
    assert any("make corpus" in error.value for error in at.error)
    assert at.session_state.get("train_trainer") is None


def test_a_play_beyond_the_servers_training_limit_waits_and_shows_its_place(monkeypatch):
    from pages.common.resources import training_pool

    # A pool of one slot for this test (the shared one may have more on a bigger machine).
    monkeypatch.setenv("EXPLORER_MAX_TRAININGS", "1")
    training_pool().shutdown()
    training_pool.clear()
    try:
        # Two users: every AppTest has the same session id, and a session has one training at a time.
        monkeypatch.setattr("pages.common.session.browser_session", lambda: ("first user", None))
        first = _open_train_page()
        running = _start_small_training(first, 20_000)
        deadline = time.monotonic() + 90
        while running.status().state != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        monkeypatch.setattr("pages.common.session.browser_session", lambda: ("second user", None))
        second = _open_train_page()
        waiting = _start_small_training(second, 20_000)
        assert running.status().state == "running", "another user's training is not closed"
        assert waiting.status().state == "queued"
        assert any("Waiting for a free training slot (you are next)" in info.value for info in second.info)
        play = second.button(key="train_play")
        assert play.label == "Pause" and not play.disabled, "a waiting start can be withdrawn"
        assert second.button(key="train_step").disabled

        _pause(first, running)
        while waiting.status().state != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting.status().state == "running", waiting.status().message
        waiting.stop()
    finally:
        training_pool().shutdown()
        training_pool.clear()


def test_a_training_whose_worker_died_is_reported_and_reset_starts_a_new_one():
    import os
    import signal

    from pages.common.resources import training_pool

    at = _open_train_page()
    trainer = _start_small_training(at, 20_000)
    _wait_for_step(trainer, 1)
    for worker in training_pool().worker_info():
        os.kill(worker["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while trainer.status().state != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    assert not at.exception, at.exception
    assert any("stopped unexpectedly" in error.value for error in at.error)
    assert at.button(key="train_play").disabled and not at.button(key="train_reset").disabled
    assert not any("Snapshot step" in s.label for s in at.select_slider), "no replay of a lost training"

    _click(at, "train_reset")  # a fresh worker has replaced the dead one
    fresh = at.session_state["train_trainer"]
    assert fresh is not trainer and fresh.status().state == "idle"
    assert not at.error, [error.value for error in at.error]
