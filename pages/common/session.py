"""Per-user session state: which model this user's pages show (the default, the pretrained MiniLM, a
pretrained model the server offers or, in a single-user run, one they opened, or one of their own: trained
here or uploaded), this user's trainer (built in one place, ``make_trainer``, or taken up again after a
reload, ``attach_run``), and offering an ended training's model in the picker.

Only the user switches the model: the picker, "Use the model of step N", an upload or a folder they open.
A training that ends or pauses adds its model to the picker and says it is ready; the pages keep showing
the chosen one.

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
from pages.common.server_models import READY, model_load, offered_models, open_models, spec_label
from pages.common.url_state import link_value, report_link_problem, url_value

OWN_KEY = "model_own"  # this user's own models in the picker, {choice: ModelBundle}, oldest first
OWN_COUNT_KEY = "model_own_count"  # numbers own models' choices ("trained-3"): a choice never names two models
READY_KEY = "model_ready"  # the choice of an ended training's model the user has not picked yet
CHOICE_KEY = "model_choice"  # which model every page shows: one of ``model_choices()`` (the sidebar picker)
CHOICE_WIDGET_KEY = "sidebar_model"  # the picker's own widget key
OPENED_KEY = "model_opened"  # folders and Hub ids this user opened (a single-user run only), in order
DEFAULT, PRETRAINED = "default", "minilm"
MODEL_CHOICES = {  # the models every user has; the server's and their own follow (``model_choices``)
    DEFAULT: "English MLM (default)",
    PRETRAINED: "MiniLM-L6 (pretrained)",
}
TRAINED, UPLOADED = "trained", "uploaded"  # the kinds of a user's own models: separate entries in the picker
OWN_KEPT = 2  # own models of each kind the picker keeps (besides the one shown): each holds its parameters
TRAINER_KEY = "train_trainer"  # this user's trainer (a RemoteTrainer, or None), started on the Train page
PUBLISHED_KEY = "train_published"  # (weak reference to a trainer, step) whose model was last handed to the pages
PAGE_KEY, PREVIOUS_PAGE_KEY = "page_shown", "page_shown_before"  # this run's page and the run before's


def note_page(title: str) -> None:
    """Records which page this run shows (app.py, before the page runs), so a page can tell a rerun of
    itself (a click, a keystroke) from a visit."""
    state = st.session_state
    state[PREVIOUS_PAGE_KEY], state[PAGE_KEY] = state.get(PAGE_KEY), title


def pretrained_choices() -> list[str]:
    """The folders and Hub ids this user's picker offers: the server's (``EXPLORER_MODELS``) and, in a
    single-user run, those the user opened. A link may name any of them (``?model=``)."""
    opened = st.session_state.get(OPENED_KEY, []) if open_models() else []
    return list(dict.fromkeys([*offered_models(), *opened]))


def open_model(spec: str) -> None:
    """Opens a folder or Hub id the user typed (a single-user run only): it joins their picker and is shown.
    Its load starts (or, after a failure, starts again) in the server's background."""
    spec = spec.strip()
    if not spec or not open_models():
        return
    state = st.session_state
    if spec in MODEL_CHOICES or spec in state.get(OWN_KEY, {}):
        pick_model(spec)  # a name the picker already has
        return
    state[OPENED_KEY] = list(dict.fromkeys([*state.get(OPENED_KEY, []), spec]))
    model_load(spec, retry=True)
    pick_model(spec)


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


def own_label(bundle: ModelBundle) -> str:
    """How the picker names one of the user's own models: from where it came ("Trained here: reverse, step
    200", "Uploaded encoder-copy.safetensors")."""
    return bundle.source[:1].upper() + bundle.source[1:]


def model_choices() -> dict[str, str]:
    """What this user's picker offers, ``{choice: label}``: the default, MiniLM, the server's pretrained models
    (and, in a single-user run, those the user opened), then their own models. Two own models of the same
    name (a run repeated after Reset) are told apart by their order."""
    own = st.session_state.get(OWN_KEY, {})
    labels = [own_label(bundle) for bundle in own.values()]
    named = [
        label if labels.count(label) == 1 else f"{label} (#{labels[: i + 1].count(label)})"
        for i, label in enumerate(labels)
    ]
    shared = {spec: spec_label(spec) for spec in pretrained_choices() if spec not in own}
    return {**MODEL_CHOICES, **shared, **dict(zip(own, named, strict=True))}


def linkable(choice: str) -> bool:
    """Whether a link can name ``choice``: the shared models can, a user's own live in their session only."""
    return choice in MODEL_CHOICES or choice in pretrained_choices()


def _add_own_model(kind: str, bundle: ModelBundle) -> str:
    """Adds ``bundle`` to the user's own models as a new choice of ``kind`` and returns that choice. Of
    each kind the newest ``OWN_KEPT`` stay, and always the one on screen: an addition never takes away the
    model a page shows."""
    state = st.session_state
    own = state.setdefault(OWN_KEY, {})
    state[OWN_COUNT_KEY] = state.get(OWN_COUNT_KEY, 0) + 1
    choice = f"{kind}-{state[OWN_COUNT_KEY]}"
    own[choice] = bundle
    same_kind = [c for c in own if c.startswith(f"{kind}-")]
    for old in same_kind[:-OWN_KEPT]:
        if old != state.get(CHOICE_KEY):
            del own[old]
    return choice


def publish_trained() -> bool:
    """Offers the result of this user's training in the model picker, once, as soon as any page runs after
    the training has ended or paused: not only the Train page, so a user who went on to another page finds
    it there. The pages keep the model they show (the sidebar says the new one is ready to pick). True if a
    new model was offered."""
    ended = _ended_training()
    if ended is None or _is_published(*ended):
        return False
    trainer, step = ended
    try:
        bundle = trainer.bundle()
    except TrainingLost:
        return False  # its worker went away just now: the Train page shows the run as failed
    st.session_state[READY_KEY] = _add_own_model(TRAINED, bundle)
    _mark_published(trainer, step)
    return True


def ready_model() -> str | None:
    """The label of the ended training's model the user has not picked yet, or None (picked, or none)."""
    state = st.session_state
    ready = state.get(READY_KEY)
    if ready is None or ready not in state.get(OWN_KEY, {}) or ready == state.get(CHOICE_KEY):
        state.pop(READY_KEY, None)
        return None
    return model_choices()[ready]


def pick_model(choice: str) -> None:
    """The user's choice of model for every page (the picker): an offer waiting to be picked is settled. A
    pretrained model that failed to load is tried again (its files or the network may be back)."""
    st.session_state[CHOICE_KEY] = choice
    st.session_state.pop(READY_KEY, None)
    if choice in pretrained_choices():
        model_load(choice, retry=True)


def model_choice() -> str:
    """Which model this user looks at: the one they chose (or the link's), else the default.

    A link's ``?model=`` may name the default, MiniLM or a model the server offers; in a single-user run it
    opens any folder or Hub id. Anything else is reported at the top of the page and the default shown.
    """
    state = st.session_state
    if CHOICE_KEY not in state or link_value("model") is not None:  # first visit, or a link followed
        wanted = url_value("model", DEFAULT)
        if wanted not in MODEL_CHOICES and wanted not in pretrained_choices() and open_models():
            open_model(wanted)
        state[CHOICE_KEY] = wanted
        if wanted not in model_choices():
            # A link names a shared model by its picker value; a user's own models live in one session.
            options = ", ".join([*MODEL_CHOICES, *offered_models()])
            report_link_problem(
                CHOICE_WIDGET_KEY, f"**model={wanted}** is not a model a link can open here ({options})."
            )
    if state[CHOICE_KEY] not in model_choices():
        state[CHOICE_KEY] = DEFAULT
    return state[CHOICE_KEY]


def current_bundle() -> ModelBundle:
    """The model this user's pages show: the default, the pretrained MiniLM, one of their own, or a pretrained
    model the server loads (the default until it is ready; the sidebar shows the loading). (An ended
    training's model is offered by the sidebar, which every page draws first: asking its worker here again
    would cost another round trip per rerun.)"""
    choice = model_choice()
    if choice == PRETRAINED:
        bundle, _ = pretrained_bundle()
        if bundle is not None:
            return bundle
    own = st.session_state.get(OWN_KEY, {})
    if choice in own:
        return own[choice]
    if choice in pretrained_choices():
        status, _, bundle, _ = model_load(choice).snapshot()
        if status == READY:
            return bundle
    return default_bundle()[0]


def set_bundle(bundle: ModelBundle, kind: str = TRAINED) -> None:
    """Makes ``bundle`` (a chosen snapshot, ``TRAINED``, or an ``UPLOADED`` checkpoint) one of this user's own
    models and the one every page shows: the user asked for it."""
    pick_model(_add_own_model(kind, bundle))


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


def attach_run(run_id: str) -> RemoteTrainer | None:
    """This session's proxy of the kept run ``run_id`` (a reloaded page), or None if the server has no such
    run (it ended and was dropped, or the server it ran on stopped). Raises ``RunOpenElsewhere`` while
    another window shows it, ``TrainingLost`` if its worker cannot be reached."""
    session_id, connected = browser_session()
    return training_pool().attach(run_id, owner=session_id, alive=connected)


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
