"""The Train page's settings and its Play/Pause, Step and Reset buttons.

The settings live in session state as one ``LiveSettings`` (``SETTINGS_KEY``), seeded from the URL (a
lesson link, ``explorer.training.lesson``) on the first visit and whenever a link this session did not
write is followed, and mirrored back into it, so a link shares exactly this setup. Widgets are re-seeded from it on every run: their own keys are forgotten when another page runs.
Buttons act in callbacks, which run before the script, so a click is never lost to a rerun. The trainer
lives in a training worker process (``make_trainer``); a training whose worker went away raises
``TrainingLost``, which a callback turns into a message, never a traceback.

This session's runs (the earlier ones' curves, the run in the link) are ``pages.common.train_runs``.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from explorer.text.texts import TEXT_LABELS
from explorer.training.config import LIVE_CHOICES, LIVE_SEED_RANGE, LIVE_STEP_RANGE, LiveSettings
from explorer.training.lesson import (
    CONTROL_GROUPS,
    PARAMS,
    hidden_from_params,
    settings_from_params,
    settings_to_params,
)
from explorer.training.remote_trainer import LIVE_STATES, TrainingLost
from explorer.training.status import ENDED, FAILED
from explorer.training.tasks import TASK_DESCRIPTIONS, TEXT_TASKS
from pages.common import train_runs as runs
from pages.common.session import PUBLISHED_KEY, TRAINER_KEY, make_trainer, publish_trained, reports_lost_training
from pages.common.train_runs import BUILT_KEY, RUN_NOTE_KEY, TEXT_FILE_KEY
from pages.common.url_state import link_problem_resolved, link_value, report_link_problem, sync_url

SETTINGS_KEY = "train_settings"  # the LiveSettings the page shows
ERROR_KEY = "train_error"  # why the last Play/Step/Reset could not build a trainer, or None
WIDGETS = {  # LiveSettings field -> widget key
    "task": "train_task",
    "text": "train_text",
    "steps": "train_steps",
    "batch_size": "train_batch",
    "num_layers": "train_layers",
    "num_heads": "train_heads",
    "d_model": "train_d_model",
    "positional": "train_positional",
    "layer_norm": "train_layer_norm",
    "learning_rate": "train_lr",
    "seed": "train_seed",
}
LABELS = {
    "task": "Task",
    "text": "Text for mlm/causal",
    "steps": "Steps",
    "batch_size": "Batch size",
    "num_layers": "Layers",
    "num_heads": "Heads",
    "d_model": "d_model",
    "positional": "Positional encoding",
    "layer_norm": "Layer norm",
    "learning_rate": "Peak learning rate (live)",
    "seed": "Seed",
}
HELP = {  # no help on the others: a tooltip's button would carry the label too (the browser test finds "Steps")
    "learning_rate": "The peak of the warm-up and cosine schedule. A change applies at once, also while training.",
}
FORMATS = {
    "text": lambda name: TEXT_LABELS[name],
    "layer_norm": lambda v: {"post": "post-LN (paper)", "pre": "pre-LN"}[v],
    "learning_rate": lambda v: f"{v:g}",
}


def settings() -> LiveSettings:
    """This user's settings, seeded from the URL on the first run (with a warning for bad values)."""
    state = st.session_state
    # On the first visit, and whenever a link this session did not write is followed (a lesson link).
    if SETTINGS_KEY not in state or any(link_value(param) is not None for param in PARAMS.values()):
        state[SETTINGS_KEY], problems = settings_from_params(st.query_params.to_dict())
        for problem in problems:  # "The link's lr='banana' was ignored: …": listed until that setting changes
            field = next(f for f, param in PARAMS.items() if problem.startswith(f"The link's {param}="))
            report_link_problem(WIDGETS[field], problem)
    for key in WIDGETS.values():
        report_link_problem(key)
    return state[SETTINGS_KEY]


def hidden() -> frozenset[str]:
    """Control groups the link hides (``?hide=architecture,text``)."""
    return hidden_from_params(st.query_params.to_dict())


def _show_later(message: str) -> None:
    st.session_state[ERROR_KEY] = message  # a callback runs before the page: the page shows it


@reports_lost_training(_show_later)
def _store(name: str) -> None:
    state = st.session_state
    link_problem_resolved(WIDGETS[name])
    state[SETTINGS_KEY] = state[SETTINGS_KEY].replace(**{name: state[WIDGETS[name]]})
    trainer = state.get(TRAINER_KEY)
    if name == "learning_rate" and trainer is not None:
        trainer.set_learning_rate(float(state[WIDGETS[name]]))


# The settings in two rows, as Playground's top bar: what a lesson changes most (the task and how to run
# it), then the architecture. Widths are relative: a slider needs more room than a number.
ROWS = (
    (("task", 1.3), ("text", 1.3), ("steps", 1.1), ("batch_size", 1.0), ("seed", 1.0), ("learning_rate", 1.9)),
    (("num_layers", 1.0), ("num_heads", 1.0), ("d_model", 1.0), ("positional", 1.2), ("layer_norm", 1.2)),
)


def _shown_settings() -> set[str]:
    """The settings whose widgets the page shows: all but the groups the link hides (and the text, which
    only the text tasks read)."""
    shown = {f.name for f in dataclasses.fields(LiveSettings)}
    for group in hidden():
        shown -= set(CONTROL_GROUPS[group])
    if settings().task not in TEXT_TASKS:
        shown.discard("text")
    return shown


def _setting_widget(column, name: str, current: LiveSettings) -> None:
    st.session_state[WIDGETS[name]] = getattr(current, name)
    common = dict(key=WIDGETS[name], on_change=_store, args=(name,), label=LABELS[name], help=HELP.get(name))
    if name in ("steps", "seed"):
        low, high = LIVE_STEP_RANGE if name == "steps" else LIVE_SEED_RANGE
        column.number_input(min_value=low, max_value=high, step=50 if name == "steps" else 1, **common)
    elif name in ("task", "text", "positional", "layer_norm"):
        column.selectbox(options=LIVE_CHOICES[name], format_func=FORMATS.get(name, str), **common)
    else:
        column.select_slider(options=LIVE_CHOICES[name], format_func=FORMATS.get(name, str), **common)


def settings_widgets() -> None:
    """One widget per setting the link does not hide, in two rows; the task's description under them and,
    for the text tasks, an upload of one's own text behind a button (it would take a row of its own)."""
    current, shown = settings(), _shown_settings()
    for row in ROWS:
        names = [(name, weight) for name, weight in row if name in shown]
        if names:
            columns = st.columns([weight for _, weight in names], vertical_alignment="bottom")
            for column, (name, _) in zip(columns, names, strict=True):
                _setting_widget(column, name, current)
    # The task's description under the rows (in the select box it was cut off), also when a lesson hides
    # the choice: it says what the model learns.
    note, upload = st.columns([5, 1], vertical_alignment="center")
    note.caption(f"**{current.task}**: {TASK_DESCRIPTIONS[current.task]}")
    if "text" in shown:
        file = st.session_state.get(TEXT_FILE_KEY)
        with upload.popover(f"Text: {file.name}" if file is not None else "Your own text…", width="stretch"):
            st.file_uploader("…or your own text (UTF-8 .txt)", type=["txt"], key=TEXT_FILE_KEY)


def sync_settings_url() -> None:
    """Mirrors the settings into the URL (only values that differ from the defaults), and the run's id."""
    wanted = settings_to_params(settings())
    for name in PARAMS.values():
        sync_url(name, wanted.get(name, ""), "")
    runs.sync_run_url()


def _build():
    """A new trainer from the current settings in place of the old one; None (and an error) if it cannot."""
    state = st.session_state
    state[ERROR_KEY] = None
    current = settings()
    text, name, problem = runs.training_text(current)
    if problem:
        state[ERROR_KEY] = problem
        return None
    try:
        trainer = make_trainer(current, text)
    except (ValueError, TrainingLost) as error:
        state[ERROR_KEY] = str(error)
        return None
    old = state.get(TRAINER_KEY)
    if old is not None:
        old.stop()
        runs.archive(old)
    state[TRAINER_KEY] = trainer
    runs.new_run(current, name)
    return trainer


def pending_changes() -> tuple[str, ...]:
    """Settings changed since the trainer was built: they apply on Reset."""
    built = st.session_state.get(BUILT_KEY)
    if st.session_state.get(TRAINER_KEY) is None or built is None:
        return ()
    changed = settings().needs_reset(built[0])
    upload = st.session_state.get(TEXT_FILE_KEY)
    if settings().task in TEXT_TASKS and (upload.name if upload is not None else None) != built[1]:
        changed = (*changed, "text") if "text" not in changed else changed
    return changed


@reports_lost_training(_show_later)
def _play_pause() -> None:
    trainer = st.session_state.get(TRAINER_KEY) or _build()
    if trainer is None:
        return
    if trainer.status().state in LIVE_STATES:  # a queued start is withdrawn the same way
        # Waits for the current call (~0.1 s), not for a compile in progress: the page stays usable, and
        # the live view reruns the page when the pause lands.
        trainer.stop(timeout=1.0)
        publish_trained()
    else:
        trainer.start()


@reports_lost_training(_show_later)
def _step() -> None:
    trainer = st.session_state.get(TRAINER_KEY) or _build()
    if trainer is not None:
        trainer.step()


@reports_lost_training(_show_later)
def _reset() -> None:
    trainer = st.session_state.get(TRAINER_KEY)
    # A failed training's worker may be gone with everything it held: Reset builds a new trainer instead.
    if trainer is not None and not pending_changes() and trainer.status().state != FAILED:
        trainer.stop()
        runs.archive(trainer)
        trainer.reset()  # back to the configured learning rate: set the one the page shows now
        trainer.set_learning_rate(float(settings().learning_rate))
        runs.new_run(settings(), st.session_state[BUILT_KEY][1])
        st.session_state.pop(PUBLISHED_KEY, None)  # a new run of the same trainer: its end is offered again
    else:
        _build()


INTRODUCTION = (
    "Train a small encoder here and watch it learn: the loss falls, attention heads settle into patterns and "
    "the gradients calm down. **Play** trains, **Step** makes one update, **Reset** starts again from the "
    "same seed. The page address keeps every setting: share it as a lesson (**Lesson link**)."
)


def header() -> None:
    """One row, as Playground's: the title (its introduction in the tooltip), Play/Pause, Step, Reset, and
    the lesson link."""
    trainer = st.session_state.get(TRAINER_KEY)
    status = trainer.status() if trainer is not None else None
    running = status is not None and status.state in LIVE_STATES
    ended = status is not None and status.state in ENDED
    title, b1, b2, b3, link = st.columns([2.2, 1, 1, 1, 1.6], vertical_alignment="center")
    title.title("Train", help=INTRODUCTION, anchor=False)
    b1.button(
        "Pause" if running else "Play",
        key="train_play",
        type="primary",
        icon=":material/pause:" if running else ":material/play_arrow:",
        disabled=ended,
        on_click=_play_pause,
        width="stretch",
    )
    b2.button(
        "Step",
        key="train_step",
        icon=":material/skip_next:",
        disabled=running or ended,
        on_click=_step,
        width="stretch",
    )
    b3.button("Reset", key="train_reset", icon=":material/restart_alt:", on_click=_reset, width="stretch")
    with link.popover("Lesson link", icon=":material/link:", width="stretch"):
        st.caption("This page's settings and hidden controls, without your run: share it with a class.")
        st.code(runs.lesson_link(), language=None, wrap_lines=True)


def notes() -> None:
    """What the buttons will do when it is not what they usually do, and what went wrong."""
    state = st.session_state
    trainer = state.get(TRAINER_KEY)
    changes = pending_changes()
    if changes:
        names = ", ".join(LABELS[name].split(" (")[0] for name in changes)
        st.warning(f"Changed: {names}. These need a new model: press **Reset** to apply them.")
    elif trainer is not None and trainer.status().state in ENDED:
        st.caption("This run has ended: **Reset** starts again from the same seed (or new settings).")
    if state.get(RUN_NOTE_KEY):
        st.warning(state[RUN_NOTE_KEY], icon=":material/history:")
    if state.get(ERROR_KEY):
        st.error(state[ERROR_KEY])
