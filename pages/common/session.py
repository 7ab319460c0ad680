"""Per-user session state: which model this user's pages show (the default, the pretrained MiniLM or their
own), this user's trainer (built in one place, ``make_trainer``), and handing a finished training's model
to every page.

Nothing here is shared between sessions: it all lives in ``st.session_state``.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.model.bundle import ModelBundle
from explorer.training.config import LiveSettings
from explorer.training.remote_trainer import RemoteTrainer, TrainingLost
from explorer.training.status import FINISHED, STOPPED
from pages.common.resources import default_bundle, pretrained_bundle, training_pool
from pages.common.url_state import link_value, report_link_problem, url_value

MODEL_KEY = "model_bundle"  # this user's own model (trained here or uploaded), if any
CHOICE_KEY = "model_choice"  # which model every page shows: one of MODEL_CHOICES (the sidebar picker)
CHOICE_WIDGET_KEY = "sidebar_model"  # the picker's own widget key
DEFAULT, PRETRAINED, OWN = "default", "minilm", "own"
MODEL_CHOICES = {
    DEFAULT: "English MLM (default)",
    PRETRAINED: "MiniLM-L6 (pretrained)",
    OWN: "Your model",
}
TRAINER_KEY = "train_trainer"  # this user's trainer (a RemoteTrainer, or None), started on the Train page
PUBLISHED_KEY = "train_published"  # (weak reference to a trainer, step) whose model was last handed to the pages


def browser_session() -> tuple[str | None, Callable[[], bool] | None]:
    """This user's session id and a check that their browser is still connected, for the training pool
    (one training per session; a session gone for a while has its training stopped). The check holds
    the id only, never the session's state. No check without a server: nothing disconnects there."""
    context = get_script_run_ctx()
    if context is None:
        return None, None
    session_id = context.session_id
    if not runtime.exists():
        return session_id, None
    instance = runtime.get_instance()
    return session_id, lambda: instance.is_active_session(session_id)


def _ended_training() -> tuple[Any, int] | None:
    """This user's trainer and its step, if its training has ended with parameters worth showing
    (finished or paused); else None. A blown-up run never replaces the model on its own: the user may
    pick its last finite step on the Train page."""
    trainer = st.session_state.get(TRAINER_KEY)
    if trainer is None:
        return None
    status = trainer.status()
    if status.state not in (FINISHED, STOPPED) or status.step == 0:
        return None  # running (never replace the model mid-run), idle after a reset, diverged or failed
    return trainer, status.step


def _is_published(trainer: Any, step: int) -> bool:
    marker = st.session_state.get(PUBLISHED_KEY)
    # A weak reference, not id(): a new trainer may reuse a freed one's id, and the marker should not
    # keep an old trainer (and its snapshots) alive.
    return marker is not None and marker[0]() is trainer and marker[1] == step


def _mark_published(trainer: Any, step: int) -> None:
    st.session_state[PUBLISHED_KEY] = (weakref.ref(trainer), step)


def publish_trained() -> bool:
    """Makes the result of this user's training the model every page shows, once, as soon as any page
    runs after training has ended: not only the Train page, so a user who went on to another page sees
    it there. A model the user chose after that (an upload, a snapshot) is not overridden, because
    ``set_bundle`` marks the ended training as seen. True if a new bundle was published."""
    ended = _ended_training()
    if ended is None or _is_published(*ended):
        return False
    trainer, step = ended
    try:
        bundle = trainer.bundle()
    except TrainingLost:
        return False  # its worker went away just now: the Train page shows the run as failed
    st.session_state[MODEL_KEY] = bundle
    st.session_state[CHOICE_KEY] = OWN
    _mark_published(trainer, step)
    return True


def model_choice() -> str:
    """Which model this user looks at: their own once they have one, else the default, unless they chose."""
    state = st.session_state
    if CHOICE_KEY not in state or link_value("model") is not None:  # first visit, or a link followed
        state[CHOICE_KEY] = url_value("model", OWN if MODEL_KEY in state else DEFAULT)
        choice = state[CHOICE_KEY]
        if choice not in MODEL_CHOICES or (choice == OWN and MODEL_KEY not in state):
            # A link names a model by its picker value; "own" cannot travel (it lives in one session).
            options = ", ".join(c for c in MODEL_CHOICES if c != OWN)
            report_link_problem(CHOICE_WIDGET_KEY, f"**model={choice}** is not a model a link can open ({options}).")
    if state[CHOICE_KEY] not in MODEL_CHOICES or (state[CHOICE_KEY] == OWN and MODEL_KEY not in state):
        state[CHOICE_KEY] = DEFAULT
    return state[CHOICE_KEY]


def current_bundle() -> ModelBundle:
    """The model this user's pages show: the default, the pretrained MiniLM, or their own. (A finished
    training's model is published by the sidebar, which every page draws first: asking its worker here
    again would cost another round trip per rerun.)"""
    choice = model_choice()
    if choice == PRETRAINED:
        bundle, _ = pretrained_bundle()
        if bundle is not None:
            return bundle
    if choice == OWN:
        return st.session_state[MODEL_KEY]
    return default_bundle()[0]


def set_bundle(bundle: ModelBundle) -> None:
    """Makes ``bundle`` (an upload or a chosen snapshot) this user's own model, shown on every page."""
    st.session_state[MODEL_KEY] = bundle
    st.session_state[CHOICE_KEY] = OWN
    ended = _ended_training()
    if ended is not None:  # the user's choice comes after the training's end: it must stay
        _mark_published(*ended)


def reports_lost_training(report: Callable[[str], None]):
    """Decorates a callback or view that uses this user's trainer: if the trainer's worker process has
    gone away (``TrainingLost``), ``report`` gets a message saying so and what to do, never a traceback."""

    def decorate(function):
        @functools.wraps(function)
        def guarded(*args):
            try:
                function(*args)
            except TrainingLost as error:
                report(f"{error} Press **Reset** to start a new training.")

        return guarded

    return decorate


def make_trainer(settings: LiveSettings, text: str | None = None) -> RemoteTrainer:
    """This user's trainer for ``settings`` (on ``text``, an uploaded text, if given): the one place the
    app builds one, in the server's training workers (``training_pool``). One per session: the pool
    closes this session's previous trainer once the new one exists. Raises ``ValueError`` with a readable
    message for settings that cannot train, ``TrainingLost`` if no worker can take it just now."""
    uploaded = text is not None
    session_id, connected = browser_session()
    return training_pool().trainer(
        settings.model_config(uploaded), settings.train_config(uploaded), text=text, owner=session_id, alive=connected
    )
