"""AppTest of the Train page: Play, Pause, Step and Reset, a live learning rate, settings from the link,
the live views (the probe beside the ideal pattern), a trained model offered in the picker but never
switched to by itself, and a run taken up again after a reload (or said to be lost)."""

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


def _picker(at: AppTest):
    return at.sidebar.selectbox(key="sidebar_model")


def _ready_note(at: AppTest) -> str | None:
    """The sidebar's note that a trained model waits to be picked."""
    notes = [i.value for i in at.sidebar.info if "is ready" in i.value]
    assert len(notes) <= 1, notes
    return notes[0] if notes else None


def _open_tab(at: AppTest, label: str) -> None:
    at.session_state["train_tab"] = label  # as a click on the tab: only the open tab's view is computed
    at.run()
    assert not at.exception, at.exception


def _chart(at: AppTest, key: str) -> dict:
    import json

    (found,) = [c for c in at.get("plotly_chart") if key in c.proto.id]
    return json.loads(found.proto.spec)


def test_play_pause_and_a_live_learning_rate_then_the_model_is_offered_not_switched_to():
    at = _open_train_page()
    default_label = _model_label(at)
    assert any("Play" in info.value for info in at.info)
    trainer = _start_small_training(at, steps=20_000)
    _wait_for_step(trainer, 40)
    assert trainer.status().state == "running", trainer.status().message
    at.run()  # run_every fragments do not tick under AppTest: rerun to draw the live view
    assert not at.exception, at.exception
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    for key in ("train_loss_chart", "train_live_attention"):
        assert any(key in k for k in keys), (key, keys)
    # The views below the screen are in tabs, each computed only while it is open.
    assert not any("train_telemetry_chart" in k for k in keys)
    for tab, key in (
        ("Gradient telemetry", "train_telemetry_chart"),
        ("Closeness to the ideal", "train_closeness_chart"),
    ):
        _open_tab(at, tab)
        assert any(key in c.proto.id for c in at.get("plotly_chart")), tab
    _open_tab(at, "Watch attention form")
    assert [m.label for m in at.metric][:3] == ["Step", "Steps / s", "Train loss"]
    assert int(at.metric[0].value) >= 40
    # The held-out numbers lag the train loss: they name the step they were evaluated at.
    status = trainer.status()
    held_out = {m.label: m for m in at.metric if m.label.startswith("Held-out")}
    assert set(held_out) == {"Held-out loss", "Held-out accuracy"}
    evaluated = [int(m.proto.delta.removeprefix("step ")) for m in held_out.values()]
    assert evaluated[0] == evaluated[1] and evaluated[0] in status.eval_steps and evaluated[0] <= status.step
    assert at.button(key="train_play").label == "Pause"

    # The learning rate changes while it runs: the next steps apply the new peak.
    at.select_slider(key="train_lr").set_value(1e-3).run()
    assert trainer.status().peak_learning_rate == 1e-3 and trainer.status().state == "running"
    assert at.query_params["lr"] == "0.001"  # and the link keeps it

    _pause(at, trainer)
    status = trainer.status()
    assert status.state == "stopped" and status.step < 20_000
    assert at.button(key="train_play").label == "Play"
    # The paused run's model is offered in the picker, and the page keeps the model it showed.
    assert _model_label(at) == default_label
    name = f"Trained here: copy, step {status.step}"
    assert name in _picker(at).options and name in _ready_note(at)
    (bundle,) = at.session_state["model_own"].values()
    assert bundle.task == "copy" and bundle.config.d_model == 32 and bundle.info["steps"] == status.step
    assert bundle.info["train_config"]["learning_rate"] == 1e-3
    # Paused: the replay scrubber follows the latest snapshot, and the download button is in its tab.
    assert _scrubber(at).value == status.snapshot_steps[-1]
    _open_tab(at, "Checkpoints")
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
    # The first run's curve stays on the loss chart for comparison, numbered and named by what differs.
    names = [trace["name"] for trace in _chart(at, "train_loss_chart")["data"]]
    assert names == ["run 1 · same settings", "train · run 2", "held-out · run 2"], names

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
    # The views below the screen a lesson hides are not offered as tabs.
    lesson = _open_train_page({"hide": "telemetry,replay,checkpoints,task"})
    assert [tab.label for tab in lesson.tabs] == ["Closeness to the ideal"]
    assert all(w.key != "train_task" for w in lesson.selectbox)
    assert any("reverse" in c.value for c in lesson.caption), "the task is still described"
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
    assert not any(label.startswith("Trained here") for label in _picker(at).options)
    assert _model_label(at) == default_label and not _ready_note(at)
    # The loss chart marks the non-finite loss instead of plotting it.
    loss_chart = next(c for c in at.get("plotly_chart") if "train_loss_chart" in c.proto.id)
    assert "loss not finite" in loss_chart.proto.spec
    # The user may still pick the last finite step.
    _scrubber(at).set_value(status.step).run()
    _click(at, "train_use_snapshot")  # the user's own act: it switches every page
    assert _model_label(at) == f"**Model:** trained here: reverse, step {status.step}"


def test_an_ended_training_is_offered_on_whichever_page_runs_next_and_only_the_user_switches():
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
    # The page keeps the model it showed (an English sentence in a toy vocabulary would read "o p en ed"):
    # the trained one waits in the picker under a name that says what it is.
    assert _model_label(at) == default_label
    name = f"Trained here: copy, step {status.step}"
    assert name in _picker(at).options and name in _ready_note(at)
    assert at.query_params.get("model") is None
    (choice,) = [c for c, label in _picker_choices(at).items() if label == name]
    _picker(at).set_value(choice).run()  # the user picks it
    assert not at.exception, at.exception
    assert _model_label(at) == f"**Model:** trained here: copy, step {status.step}" and not _ready_note(at)
    at.switch_page("pages/tokens.py").run()
    assert _model_label(at) == f"**Model:** trained here: copy, step {status.step}"

    # Another user (session) still sees the default model: nothing is shared but cached resources.
    other = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    other.switch_page("pages/train.py").run()
    assert not other.exception, other.exception
    assert _model_label(other) == default_label
    assert "train_trainer" not in other.session_state

    # A snapshot the user picks (their own act) is shown; a later run's end does not replace it.
    at.switch_page("pages/train.py").run()
    steps = list(trainer.snapshot_steps())
    assert len(steps) >= 2, steps
    _scrubber(at).set_value(steps[1]).run()
    _open_tab(at, "Head roles")  # each head's role over the snapshots
    assert "step" in _chart(at, "train_role_timeline")["layout"]["xaxis"]["title"]["text"]
    _open_tab(at, "Closeness to the ideal")
    assert any("train_closeness_timeline" in c.proto.id for c in at.get("plotly_chart"))
    _open_tab(at, "Watch attention form")
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
    _click(at, "train_reset")
    _click(at, "train_play")
    assert trainer.wait(timeout=90) and trainer.status().state == "finished"
    at.switch_page("pages/tokens.py").run()
    assert not at.exception, at.exception
    assert _model_label(at) == chosen
    assert name in _ready_note(at)
    assert sum(label.startswith("Trained here") for label in _picker(at).options) >= 2


def _picker_choices(at: AppTest) -> dict:
    from pages.common.session import MODEL_CHOICES, own_label

    own = at.session_state["model_own"] if "model_own" in at.session_state else {}
    return {**MODEL_CHOICES, **{choice: own_label(bundle) for choice, bundle in own.items()}}


def test_running_training_never_replaces_the_model_and_a_pause_offers_it():
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
    assert _model_label(at) == default_label
    assert f"Trained here: copy, step {trainer.status().step}" in _ready_note(at)
    assert not any("Training on the Train page" in c.value for c in at.sidebar.caption)


def test_the_live_probe_is_drawn_beside_the_ideal_pattern_of_a_toy_task():
    from explorer.training.tasks import ideal_attention

    at = _open_train_page()
    trainer = _start_small_training(at, steps=20_000)
    _wait_for_step(trainer, 1)
    deadline = time.monotonic() + 90
    while len(trainer.status().snapshot_steps) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    trainer.stop()
    at.run()
    assert not at.exception, at.exception
    info = trainer.info()
    expected = ideal_attention(info.spec, info.probe.inputs[None])[0]  # [T, T], from the task's definition
    for key in ("train_live_attention", "train_replay_attention"):
        traces = _chart(at, key)["data"]
        (ideal,) = [t for t in traces if t["hovertemplate"].startswith("ideal")]
        np.testing.assert_array_equal(_z(ideal), expected)
        learned = [t for t in traces if t is not ideal]
        assert len(learned) == info.model_config.num_layers * info.model_config.num_heads
        assert {t["coloraxis"] for t in traces} == {"coloraxis"}  # one colour scale


def _z(trace: dict) -> np.ndarray:
    """A heatmap's z as plotly's JSON carries it (a list of rows, or a typed array)."""
    import base64

    z = trace["z"]
    if isinstance(z, dict):  # {"dtype": "f4", "bdata": ..., "shape": "16, 16"}
        shape = tuple(int(n) for n in str(z["shape"]).split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, np.float32)


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


def _trainer(at: AppTest):
    return at.session_state["train_trainer"] if "train_trainer" in at.session_state else None


def _link(at: AppTest) -> dict:
    return {name: at.query_params[name] for name in at.query_params}


def test_a_reloaded_page_takes_up_its_paused_run_and_play_continues_it():
    at = _open_train_page()
    trainer = _start_small_training(at, steps=20_000)
    _wait_for_step(trainer, 40)
    _pause(at, trainer)
    paused = trainer.status()
    link = _link(at)
    assert link["run"] == trainer.run_id and link["task"] == "copy"
    # The lesson link is the same page without the run: a class gets the settings, not this run.
    (lesson,) = [c.value for c in at.code]
    assert "task=copy" in lesson and "run=" not in lesson

    reloaded = _open_train_page(link)  # a new session from the same link, as a reload makes
    again = reloaded.session_state["train_trainer"]
    assert again is not trainer and again.run_id == trainer.run_id
    assert f"Step {paused.step} of 20000 · paused" in reloaded.get("progress")[0].proto.text
    assert int(reloaded.metric[0].value) == paused.step
    assert (
        reloaded.selectbox(key="train_task").value == "copy" and reloaded.select_slider(key="train_d_model").value == 32
    )
    assert not any("Changed:" in w.value for w in reloaded.warning), "the run's own settings: nothing to Reset"
    assert not any("no longer on the server" in w.value for w in reloaded.warning)
    _click(reloaded, "train_play")  # Play continues the same run
    _wait_for_step(again, paused.step + 10)
    status = again.status()
    assert status.eval_steps[0] == 0 and status.loss[: len(paused.loss)] == paused.loss
    _pause(reloaded, again)


def test_a_link_to_a_run_the_server_does_not_have_says_so_and_play_starts_it_again():
    from pages.common.train_runs import RUN_LOST

    link = {"run": "ended-long-ago", "task": "copy", "steps": "300", "layers": "1", "d_model": "32", "batch": "8"}
    at = _open_train_page(link)
    assert [w.value for w in at.warning if "no longer on the server" in w.value] == [RUN_LOST]
    assert _trainer(at) is None
    # The settings come from the link, ready to start again.
    assert at.selectbox(key="train_task").value == "copy" and at.number_input(key="train_steps").value == 300
    at.run()
    assert [w.value for w in at.warning if "no longer on the server" in w.value] == [RUN_LOST]  # it stays
    _click(at, "train_play")
    trainer = at.session_state["train_trainer"]
    info = trainer.info()
    assert info.train_config.steps == 300 and info.model_config.num_layers == 1 and info.train_config.task == "copy"
    assert at.query_params["run"] == trainer.run_id != "ended-long-ago"
    assert not any("no longer on the server" in w.value for w in at.warning)
    trainer.stop()


def test_a_run_open_in_another_window_is_not_taken_from_it(monkeypatch):
    monkeypatch.setattr("pages.common.session.browser_session", lambda: ("first window", lambda: True))
    first = _open_train_page()
    trainer = _start_small_training(first, steps=20_000)
    _wait_for_step(trainer, 5)
    _pause(first, trainer)
    monkeypatch.setattr("pages.common.session.browser_session", lambda: ("second window", lambda: True))
    second = _open_train_page(_link(first))
    assert any("open in another window" in w.value for w in second.warning)
    assert _trainer(second) is None
    assert trainer.status().state == "stopped" and first.session_state["train_trainer"] is trainer
    _click(first, "train_play")  # the first window still drives it
    _wait_for_step(trainer, trainer.status().step + 5)
    _pause(first, trainer)
