"""AppTest of the Train page: start training, let the worker run, rerun, see the live views, stop, and
find the trained model published to every page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow  # trainings and trainer threads: seconds each

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    from explorer.inference import enable_compilation_cache

    enable_compilation_cache()


def _open_train_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    # Straight to the Train page: the default page would start compiling the inference engine.
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def test_train_page_start_run_stop_publishes_the_model():
    at = _open_train_page()
    assert any("Start training" in info.value for info in at.info)
    # A small, fast model; many steps so that it is still running when we look.
    at.selectbox(key="train_task").set_value("copy")
    at.number_input(key="train_steps").set_value(20_000)
    at.select_slider(key="train_batch").set_value(8)
    at.select_slider(key="train_layers").set_value(1)
    at.select_slider(key="train_heads").set_value(2)
    at.select_slider(key="train_d_model").set_value(32)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception

    trainer = at.session_state["train_trainer"]
    deadline = time.monotonic() + 90
    while trainer.status().step < 40 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert trainer.status().state == "running", trainer.status().message
    at.run()  # run_every fragments do not tick under AppTest: rerun to draw the live view
    assert not at.exception, at.exception
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    assert any("train_loss_chart" in key for key in keys), keys
    assert any("train_live_attention" in key for key in keys), keys
    assert any("train_telemetry_chart" in key for key in keys), keys
    assert [m.label for m in at.metric][:2] == ["Step", "Train loss"]
    assert int(at.metric[0].value) >= 40

    at.button(key="train_stop").click().run()
    assert not at.exception, at.exception
    status = trainer.status()
    assert status.state == "stopped" and status.step < 20_000
    bundle = at.session_state["model_bundle"]
    assert bundle.task == "copy" and bundle.config.d_model == 32 and bundle.info["steps"] == status.step
    # Stopped: the replay scrubber and the download button are there.
    assert at.select_slider(key="train_scrub").value in status.snapshot_steps
    assert at.get("download_button")
    at.button(key="train_reset").click().run()
    assert trainer.status().step == 0


def test_blow_up_is_reported_on_the_page():
    at = _open_train_page()
    at.selectbox(key="train_task").set_value("reverse")
    at.number_input(key="train_steps").set_value(400)
    at.select_slider(key="train_batch").set_value(8)
    at.select_slider(key="train_layers").set_value(1)
    at.select_slider(key="train_heads").set_value(2)
    at.select_slider(key="train_d_model").set_value(32)
    at.select_slider(key="train_lr").set_value(1e4)
    at.button(key="train_start").click().run()
    trainer = at.session_state["train_trainer"]
    assert trainer.wait(timeout=90)
    at.run()
    assert not at.exception, at.exception
    assert trainer.status().state == "diverged"
    assert any("blew up" in error.value for error in at.error)
    # The last finite parameters are what the other pages now show.
    assert at.session_state["model_bundle"].task == "reverse"


def _start_small_training(at: AppTest, steps: int) -> object:
    """Starts a tiny copy-task training on the Train page and returns its trainer."""
    at.selectbox(key="train_task").set_value("copy")
    at.number_input(key="train_steps").set_value(steps)
    at.select_slider(key="train_batch").set_value(8)
    at.select_slider(key="train_layers").set_value(1)
    at.select_slider(key="train_heads").set_value(2)
    at.select_slider(key="train_d_model").set_value(32)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    return at.session_state["train_trainer"]


def _model_label(at: AppTest) -> str:
    labels = [m.value for m in at.sidebar.markdown if "Model:" in m.value]
    assert len(labels) == 1, labels
    return labels[0]


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
    at.select_slider(key="train_scrub").set_value(steps[1]).run()
    # The replay shows each head's role at that step and a timeline of the roles' scores over the snapshots.
    timeline = next(c for c in at.get("plotly_chart") if "train_role_timeline" in c.proto.id)
    assert "step" in timeline.proto.spec
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
    deadline = time.monotonic() + 90
    while trainer.status().step < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    at.switch_page("pages/tokens.py").run()
    assert not at.exception, at.exception
    assert trainer.status().state == "running"
    assert _model_label(at) == default_label
    assert any("Training on the Train page" in c.value for c in at.sidebar.caption)
    trainer.stop()  # as if the user had stopped it on the Train page in another tab
    at.run()  # the sidebar's run_every fragment would rerun the page; AppTest needs a nudge
    assert not at.exception, at.exception
    assert _model_label(at) == f"**Model:** trained here: copy, step {trainer.status().step}"
    assert not any("Training on the Train page" in c.value for c in at.sidebar.caption)


def test_english_masked_lm_trains_on_the_page_and_its_loss_chart_shows_the_unigram_baseline():
    at = _open_train_page()
    at.selectbox(key="train_task").set_value("mlm")
    assert at.selectbox(key="train_text").value == "english"  # the default text of the text tasks
    at.number_input(key="train_steps").set_value(40)
    at.select_slider(key="train_layers").set_value(1)
    at.select_slider(key="train_d_model").set_value(32)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    trainer = at.session_state["train_trainer"]
    assert trainer.wait(timeout=120) and trainer.status().state == "finished", trainer.status().message
    assert trainer.vocab.closed and trainer.text.name == "english" and 6 < trainer.unigram_loss < 9
    at.run()
    loss_chart = next(c for c in at.get("plotly_chart") if "train_loss_chart" in c.proto.id)
    assert "unigram baseline" in loss_chart.proto.spec


def test_english_text_without_the_corpus_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path))  # an empty data folder: no corpus here
    at = _open_train_page()
    at.selectbox(key="train_task").set_value("mlm")
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert any("make corpus" in error.value for error in at.error)
    assert at.session_state.get("train_trainer") is None


def test_start_with_the_default_settings_is_the_setup_the_training_workers_compile_first():
    from pages.common.resources import default_training_setup

    at = _open_train_page()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    trainer = at.session_state["train_trainer"]
    assert (trainer.model_config, trainer.train_config) == default_training_setup()
    trainer.stop()


def test_a_start_beyond_the_servers_training_limit_waits_and_shows_its_place(monkeypatch):
    from pages.common.resources import training_pool

    # A pool of one slot for this test (the shared one may have more on a bigger machine).
    monkeypatch.setenv("EXPLORER_MAX_TRAININGS", "1")
    training_pool().shutdown()
    training_pool.clear()
    try:
        # Two users: every AppTest has the same session id, and a session has one training at a time. (The
        # Start callback keeps the names of the run that drew the button: patch before opening the page.)
        monkeypatch.setattr("pages.common.browser_session", lambda: ("first user", None))
        first = _open_train_page()
        running = _start_small_training(first, 20_000)
        deadline = time.monotonic() + 90
        while running.status().state != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        monkeypatch.setattr("pages.common.browser_session", lambda: ("second user", None))
        second = _open_train_page()
        waiting = _start_small_training(second, 20_000)
        assert waiting.status().state == "queued"
        assert any("Waiting for a free training slot (you are next)" in info.value for info in second.info)
        assert not second.button(key="train_stop").disabled, "a waiting start can be withdrawn"

        first.button(key="train_stop").click().run()
        while waiting.status().state != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert waiting.status().state == "running", waiting.status().message
        waiting.stop()
    finally:
        training_pool().shutdown()
        training_pool.clear()
