"""Per-user session state: which model this user's pages show (the default, the pretrained MiniLM or their
own), this user's trainer (built in one place, ``make_trainer``), and handing a finished training's model
to every page.

Nothing here is shared between sessions: it all lives in ``st.session_state``.
"""

from __future__ import annotations

import weakref
from typing import Any

import streamlit as st

from explorer.bundle import ModelBundle
from explorer.training.config import LiveSettings
from explorer.training.runner import Trainer
from explorer.training.status import FINISHED, STOPPED
from pages.common.resources import default_bundle, pretrained_bundle
from pages.common.url_state import url_value

MODEL_KEY = "model_bundle"  # this user's own model (trained here or uploaded), if any
CHOICE_KEY = "model_choice"  # which model every page shows: one of MODEL_CHOICES (the sidebar picker)
CHOICE_WIDGET_KEY = "sidebar_model"  # the picker's own widget key
DEFAULT, PRETRAINED, OWN = "default", "minilm", "own"
MODEL_CHOICES = {
    DEFAULT: "English MLM (default)",
    PRETRAINED: "MiniLM-L6 (pretrained)",
    OWN: "Your model",
}
TRAINER_KEY = "train_trainer"  # this user's Trainer (or None), started on the Train page
PUBLISHED_KEY = "train_published"  # (weak reference to a trainer, step) whose model was last handed to the pages


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
    st.session_state[MODEL_KEY] = trainer.bundle()
    st.session_state[CHOICE_KEY] = OWN
    _mark_published(trainer, step)
    return True


def model_choice() -> str:
    """Which model this user looks at: their own once they have one, else the default, unless they chose."""
    state = st.session_state
    if CHOICE_KEY not in state:
        state[CHOICE_KEY] = url_value("model", OWN if MODEL_KEY in state else DEFAULT)
    if state[CHOICE_KEY] not in MODEL_CHOICES or (state[CHOICE_KEY] == OWN and MODEL_KEY not in state):
        state[CHOICE_KEY] = DEFAULT
    return state[CHOICE_KEY]


def current_bundle() -> ModelBundle:
    """The model this user's pages show: the default, the pretrained MiniLM, or their own."""
    publish_trained()
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


def make_trainer(settings: LiveSettings, text: str | None = None) -> Trainer:
    """This user's trainer for ``settings`` (on ``text``, an uploaded text, if given): the one place the
    app builds one. Raises ``ValueError`` with a readable message for settings that cannot train."""
    uploaded = text is not None
    return Trainer(settings.model_config(uploaded), settings.train_config(uploaded), text=text)
