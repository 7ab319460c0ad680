"""AppTest of the Train page: start training, let the worker run, rerun, see the live views, stop, and
find the trained model published to every page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

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
