"""This session's runs on the Train page: what the current one was built with, the earlier ones' loss
curves (numbered, and named by what differs from the run shown), and the run in the link.

The link names the run (``?run=``): a reloaded page takes it up again while the server keeps it
(``take_up_run``); if the server no longer has it, the page says so (``RUN_LOST``) and keeps the link's
settings for Play. A lesson link leaves the run out (``lesson_link``): a run is one person's.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from explorer.text.texts import UPLOADED, text_available
from explorer.training.config import LiveSettings
from explorer.training.remote_trainer import RunOpenElsewhere, TrainingLost
from explorer.training.tasks import TEXT_TASKS
from pages.common.session import TRAINER_KEY, attach_run
from pages.common.url_state import sync_url

BUILT_KEY = "train_built_with"  # the LiveSettings (and uploaded file name) the current trainer was built with
PAST_RUNS_KEY = "train_past_runs"  # loss curves of this session's earlier runs, newest last
RUNS_KEY = "train_runs"  # how many runs this session has had: numbers them on the loss chart
RUN_NOTE_KEY = "train_run_note"  # what became of the run the link names, when it could not be taken up
RUN_TRIED_KEY = "train_run_tried"  # the run id this session tried to take up (once per id)
MAX_PAST_RUNS = 4  # curves only (no parameters): a few lists of floats per session
RUN_PARAM = "run"  # the link's run id
TEXT_FILE_KEY = "train_text_file"  # the user's own training text (an uploaded file), for the text tasks
# Said when the link names a run this server does not have: it ended and was cleared, or the server (or
# the replica of a class server) it ran on stopped. A class server's failover sends the browser to another
# replica with the same link, so this is what a student sees there: keep it plain and keep Play working.
RUN_LOST = (
    "The run in this link is no longer on the server (it ended and was cleared, or the server it ran on "
    "restarted). Its settings are restored from the link: press **Play** to start it again."
)


def training_text(current: LiveSettings) -> tuple[str | None, str | None, str | None]:
    """(uploaded text or None, its file name, a problem): what a text task would train on."""
    upload = st.session_state.get(TEXT_FILE_KEY)
    if current.task not in TEXT_TASKS:
        return None, None, None
    if upload is not None:
        try:
            return upload.getvalue().decode("utf-8"), upload.name, None
        except UnicodeDecodeError:
            return None, None, f"{upload.name} is not UTF-8 text; save it as UTF-8 and upload it again."
    return None, None, text_available(current.text)


def archive(trainer) -> None:
    """Keeps the ended run's loss curve, its number and its settings (the rate it ended with), to overlay
    on the next runs (``past_runs``)."""
    state = st.session_state
    status, built = trainer.status(), state.get(BUILT_KEY)
    if not status.steps or built is None:
        return
    runs = state.setdefault(PAST_RUNS_KEY, [])
    settings_then = built[0].replace(learning_rate=status.peak_learning_rate)
    runs.append({"number": run_number(), "settings": settings_then, "steps": status.steps, "loss": status.loss})
    del runs[:-MAX_PAST_RUNS]


def new_run(settings: LiveSettings, text_name: str | None) -> None:
    """Records that a new run starts (a new trainer, or a Reset) with these settings: it gets the next
    number, and what became of the link's run no longer matters."""
    state = st.session_state
    state[BUILT_KEY] = (settings, text_name)
    state[RUNS_KEY] = state.get(RUNS_KEY, 0) + 1
    state.pop(RUN_NOTE_KEY, None)


def past_runs() -> list[dict]:
    """The earlier runs for the loss chart, each labelled by its number and what differs from the run shown
    now ("run 1 · lr 0.01"): two runs with the same settings are still told apart."""
    built = st.session_state.get(BUILT_KEY)
    return [
        {
            **run,
            "label": f"run {run['number']} · {run['settings'].differences(built[0])}"
            if built
            else f"run {run['number']}",
        }
        for run in st.session_state.get(PAST_RUNS_KEY, [])
    ]


def run_number() -> int:
    """The number of the run shown now (1 for a session's first)."""
    return st.session_state.get(RUNS_KEY, 1)


def sync_run_url() -> None:
    """The run's id in the link while there is a run: a reload takes it up again. Without a run of this
    session the link's run id stays (a run that could not be taken up: the same link says so again)."""
    trainer = st.session_state.get(TRAINER_KEY)
    if trainer is not None and trainer.run_id:
        sync_url(RUN_PARAM, trainer.run_id, "")


def lesson_link() -> str:
    """This page's link without its run: the settings, the hidden controls, the text, for a class."""
    params = {name: value for name, value in st.query_params.to_dict().items() if name != RUN_PARAM}
    base = st.context.url or "/train"
    return base + ("?" + urlencode(params) if params else "")


def take_up_run() -> None:
    """Takes up the run the link names, once per session, if this session has no run yet (a reloaded page):
    the run, where it stood, and the settings it was built with. If the server no longer has it, or another
    window shows it, the page says so (``RUN_NOTE_KEY``) and keeps the link's settings for Play."""
    state = st.session_state
    run_id = st.query_params.get(RUN_PARAM)
    if not run_id or state.get(TRAINER_KEY) is not None or state.get(RUN_TRIED_KEY) == run_id:
        return
    state[RUN_TRIED_KEY] = run_id
    try:
        trainer = attach_run(run_id)
    except RunOpenElsewhere as error:
        state[RUN_NOTE_KEY] = (
            f"{error} This window keeps the run's settings: close the other one and reload this page to "
            "take the run up here, or press **Play** to start a run of your own."
        )
        return
    except TrainingLost:
        trainer = None
    if trainer is None:
        state[RUN_NOTE_KEY] = RUN_LOST
        return
    info, status = trainer.info(), trainer.status()
    built = LiveSettings.from_configs(info.model_config, info.train_config)
    uploaded = info.train_config.text == UPLOADED and built.task in TEXT_TASKS
    state[TRAINER_KEY] = trainer
    new_run(built.replace(learning_rate=status.peak_learning_rate), "uploaded text" if uploaded else None)
