"""Per-user session state: which model this user's pages show (the default, the pretrained MiniLM, their own,
or a pretrained model the server offers or, in a single-user run, one they opened), this user's trainer
(built in one place, ``make_trainer``), and handing a finished training's model to every page.

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
from pages.common.resources import (
    READY,
    default_bundle,
    model_load,
    offered_models,
    open_models,
    pretrained_bundle,
    training_pool,
)
from pages.common.url_state import url_value

MODEL_KEY = "model_bundle"  # this user's own model (trained here or uploaded), if any
CHOICE_KEY = "model_choice"  # which model every page shows: one of ``model_choices()`` (the sidebar picker)
CHOICE_WIDGET_KEY = "sidebar_model"  # the picker's own widget key
OPENED_KEY = "model_opened"  # folders and Hub ids this user opened (a single-user run only), in order
NOTE_KEY = "model_note"  # why the link's model is not the one shown, until the user picks one
DEFAULT, PRETRAINED, OWN = "default", "minilm", "own"
MODEL_CHOICES = {
    DEFAULT: "English MLM (default)",
    PRETRAINED: "MiniLM-L6 (pretrained)",
    OWN: "Your model",
}
TRAINER_KEY = "train_trainer"  # this user's trainer (a RemoteTrainer, or None), started on the Train page
PUBLISHED_KEY = "train_published"  # (weak reference to a trainer, step) whose model was last handed to the pages


def model_label(spec: str) -> str:
    """How the picker names a model: its own label, a Hub id as it is, a folder by its name."""
    if spec in MODEL_CHOICES:
        return MODEL_CHOICES[spec]
    return f"{spec.rstrip('/').rsplit('/', 1)[-1]} (folder)" if spec.startswith(("/", ".", "~")) else spec


def model_choices() -> dict[str, str]:
    """What this user's picker offers, ``{choice: label}``: the default, MiniLM, their own model once they
    have one, the server's models (``EXPLORER_MODELS``) and, in a single-user run, what they opened."""
    state = st.session_state
    choices = [c for c in MODEL_CHOICES if c != OWN or MODEL_KEY in state]
    choices += list(offered_models()) + (list(state.get(OPENED_KEY, [])) if open_models() else [])
    return {choice: model_label(choice) for choice in dict.fromkeys(choices)}


def open_model(spec: str) -> None:
    """Opens a folder or Hub id the user typed (a single-user run only): it joins their picker and is shown."""
    spec = spec.strip()
    if not spec or not open_models():
        return
    state = st.session_state
    state[OPENED_KEY] = list(dict.fromkeys([*state.get(OPENED_KEY, []), spec]))
    state[CHOICE_KEY] = spec
    state.pop(NOTE_KEY, None)
    model_load(spec, retry=True)


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
    """Which model this user looks at: their own once they have one, else the default, unless they chose.

    A link's ``?model=`` is honoured when the server offers that model (or, in a single-user run, opens it);
    otherwise the default is shown and the sidebar says why, until the user picks a model.
    """
    state = st.session_state
    if CHOICE_KEY not in state:
        wanted = url_value("model", OWN if MODEL_KEY in state else DEFAULT)
        if wanted not in model_choices() and wanted not in (OWN, DEFAULT):
            if open_models():
                open_model(wanted)
            else:
                state[NOTE_KEY] = f"The link asks for the model {wanted!r}, which this server does not offer."
        state[CHOICE_KEY] = wanted
    if state[CHOICE_KEY] not in model_choices():
        state[CHOICE_KEY] = DEFAULT
    return state[CHOICE_KEY]


def current_bundle() -> ModelBundle:
    """The model this user's pages show: the default, the pretrained MiniLM, their own, or a pretrained model
    the server loads (the default until it is ready; the sidebar shows the loading). (A finished training's
    model is published by the sidebar, which every page draws first: asking its worker here again would cost
    another round trip per rerun.)"""
    choice = model_choice()
    if choice == PRETRAINED:
        bundle, _ = pretrained_bundle()
        if bundle is not None:
            return bundle
    elif choice == OWN:
        return st.session_state[MODEL_KEY]
    elif choice != DEFAULT:
        status, _, bundle, _ = model_load(choice).snapshot()
        if status == READY:
            return bundle
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
