"""Widgets and drawing helpers every page shares: the sidebar (text, model picker, training status), charts
with their downloads, and the window over long inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from explorer.interpret.analysis import token_window, unique_labels
from explorer.model.bundle import SENTENCE_SIMILARITY, ModelBundle
from explorer.training.remote_trainer import QUEUED
from explorer.training.status import RUNNING
from pages.common.resources import default_bundle, pretrained_bundle
from pages.common.server_models import FAILED, LOADING, model_load, open_models
from pages.common.session import (
    CHOICE_KEY,
    CHOICE_WIDGET_KEY,
    DEFAULT,
    PRETRAINED,
    TRAINER_KEY,
    current_bundle,
    linkable,
    model_choice,
    model_choices,
    open_model,
    pick_model,
    pretrained_choices,
    publish_trained,
    ready_model,
)
from pages.common.text import Sentence, current_sentence, text_box
from pages.common.url_state import (
    INT,
    kept,
    link_notice,
    link_problem_resolved,
    one_of,
    report_link_problem,
    rerun_on_reconnect,
    route_through_app,
    sync_url,
)

# Token axes longer than this are shown one window at a time (a 512 x 512 heatmap would stall a browser).
WINDOW = 96
OPEN_WIDGET_KEY = "sidebar_open_model"  # the text box that opens a folder or Hub id (a single-user run)


def _open_typed() -> None:
    typed = st.session_state.get(OPEN_WIDGET_KEY, "")
    st.session_state[OPEN_WIDGET_KEY] = ""  # the box empties: the model is in the picker now
    open_model(typed)
    link_problem_resolved(CHOICE_WIDGET_KEY)


def _watch_loading(spec: str) -> None:
    """While a pretrained model loads in the server's background, says what it is doing; when it is done,
    reruns the page so every view shows it (the pages show the default model meanwhile)."""
    status, message, _, seconds = model_load(spec).snapshot()
    if status != LOADING:
        st.rerun()  # the whole page
    st.caption(f"Loading **{spec}** ({seconds:.0f} s): {message} The pages show the default model until it is ready.")


def _watch_training() -> None:
    """While this user's training runs, says so in the sidebar; when it ends, reruns the page so the
    sidebar offers the trained model without waiting for the user's next click."""
    trainer = st.session_state.get(TRAINER_KEY)
    status = trainer.status() if trainer is not None else None
    if status is None or status.state not in (RUNNING, QUEUED):
        publish_trained()
        st.rerun()  # the whole page; without a running trainer the sidebar stops drawing this fragment
    if status.state == QUEUED:
        st.caption(f"Training on the Train page: {status.message}")
        return
    st.caption(
        f"Training on the Train page: step {status.step} of {status.total_steps}. When it ends, its model is "
        "offered under **Model**."
    )


def _choose_model() -> None:
    pick_model(st.session_state[CHOICE_WIDGET_KEY])
    link_problem_resolved(CHOICE_WIDGET_KEY)


def sidebar(watch_training: bool = True) -> None:
    """The thin sidebar of every page: the text box and which model the pages show.

    ``watch_training``: while this user's training runs, tick twice a second to pick up its end (the
    Train page does that in its own live view).
    """
    route_through_app()
    link_notice()
    text_box()
    if publish_trained():
        st.toast("Your trained model is ready: pick it under **Model** in the sidebar.")
    model_choice()
    report_link_problem(CHOICE_WIDGET_KEY)  # a model the link named and this app lacks, until another is picked
    choices = model_choices()
    # As with the text box: the choice lives under its own key, which survives pages switching; the
    # widget's key is reset to it on every run.
    st.session_state[CHOICE_WIDGET_KEY] = st.session_state[CHOICE_KEY]
    st.sidebar.selectbox(
        "Model",
        list(choices),
        key=CHOICE_WIDGET_KEY,
        format_func=choices.get,
        on_change=_choose_model,
    )
    if open_models():
        st.sidebar.text_input(
            "Open a model",
            key=OPEN_WIDGET_KEY,
            placeholder="bert-base-uncased, or /path/to/folder",
            help="A folder in Hugging Face's layout (config.json, model.safetensors, a tokenizer) or a Hugging Face "
            "Hub id: BERT, RoBERTa, DistilBERT or ELECTRA. A Hub model is downloaded once into the Hugging Face cache.",
            on_change=_open_typed,
        )
    ready = ready_model()
    if ready is not None:  # until the user picks a model: the pages keep the one they show
        st.sidebar.info(f"**{ready}** is ready: pick it above to see it on every page.", icon=":material/school:")
    # The user's own models live in this session only: a link names the shared ones.
    choice = st.session_state[CHOICE_KEY]
    sync_url("model", choice if linkable(choice) else DEFAULT, DEFAULT)
    if choice == PRETRAINED and pretrained_bundle()[1]:
        st.sidebar.warning(f"{pretrained_bundle()[1]} Showing the default model meanwhile.")
    if choice in pretrained_choices():
        status, message, _, _ = model_load(choice).snapshot()
        if status == LOADING:
            with st.sidebar:
                st.fragment(run_every=0.5)(_watch_loading)(choice)
        elif status == FAILED:
            st.sidebar.warning(f"{message} Showing the default model meanwhile.")
    bundle = current_bundle()
    st.sidebar.markdown(f"**Model:** {bundle.source}")
    if not bundle.config.output_head:
        kind = "A sentence encoder" if bundle.task == SENTENCE_SIMILARITY else "An encoder"
        st.sidebar.caption(f"{kind} without a prediction head: views of predictions say so.")
    elif not bundle.trained:
        st.sidebar.warning("Untrained model: random weights, so attention patterns and predictions are noise.")
    else:
        st.sidebar.caption(f"Trained on the **{bundle.task}** task.")
    problem = default_bundle()[1]
    if problem and bundle is default_bundle()[0]:
        st.sidebar.caption(problem)
    trainer = st.session_state.get(TRAINER_KEY)
    if watch_training and trainer is not None and trainer.status().state in (RUNNING, QUEUED):
        with st.sidebar:
            st.fragment(run_every=0.5)(_watch_training)()
    with st.sidebar:
        rerun_on_reconnect()


def open_page(title: str, caption: str | Callable[[ModelBundle], str]) -> Sentence:
    """The opening every page about the current sentence shares: the sidebar, a title and caption, and the
    sentence (the page stops after a message when there is none, e.g. an empty text). ``caption`` may be a
    function of the model shown, for a caption that describes it (``explorer.model.describe``)."""
    sidebar()
    st.title(title)
    st.caption(caption(current_bundle()) if callable(caption) else caption)
    sentence = current_sentence()
    if sentence is None:
        st.stop()
    return sentence


def plotly_config(name: str) -> dict[str, Any]:
    return {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}}


def chart(
    fig: go.Figure,
    key: str,
    csv: Callable[[], str] | None = None,
    json: Callable[[], str] | None = None,
) -> None:
    """Draws a figure (PNG download in its toolbar) and offers its numbers as CSV and/or JSON.

    ``csv``/``json`` are callables: they run only when someone clicks, so a rerun serialises nothing.
    """
    # theme=None: the figures carry their own light/dark-neutral style (explorer.figures.finish), and
    # skipping Streamlit's in-browser restyling makes every chart update faster.
    # A figure that sets its own width (square heatmap cells) keeps it; the others fill the column.
    width = "content" if fig.layout.width else "stretch"
    st.plotly_chart(fig, key=key, config=plotly_config(key), theme=None, width=width)
    download_row(key, csv, json)


def download_row(key: str, csv: Callable[[], str] | None = None, json: Callable[[], str] | None = None) -> None:
    """CSV and/or JSON download buttons for a view's numbers, named after ``key`` (made only on a click)."""
    if csv is None and json is None:
        return
    downloads = [d for d in (("csv", csv, "text/csv"), ("json", json, "application/json")) if d[1] is not None]
    # A row sized by its buttons: fixed column fractions clipped a button in a half-width column to "J…".
    row = st.container(horizontal=True, gap="small")
    for kind, make, mime in downloads:
        row.download_button(
            kind.upper(),
            make,
            file_name=f"{key}.{kind}",
            mime=mime,
            key=f"{key}_{kind}",
            on_click="ignore",
            type="tertiary",
            icon=":material/download:",
        )


def window_control(length: int, key: str, param: str = "from", first: int = 0) -> slice:
    """For inputs longer than ``WINDOW`` tokens, a slider that pages through positions (kept in the link as
    ``param``); else all of them. ``first``: the positions are ``first .. first + length - 1`` (the text
    without a leading [CLS])."""
    if length <= WINDOW:
        return slice(first, first + length)
    # The text may have got shorter since the slider was set: clip its value to the new range.
    kept(key, first, param, INT, fix=lambda start: first + token_window(length, start - first, WINDOW).start)
    start = st.slider(
        f"Long input: show positions from (window of {WINDOW})",
        min_value=first,
        max_value=first + length - WINDOW,
        step=8,
        key=key,
    )
    window = token_window(length, start - first, WINDOW)
    return slice(first + window.start, first + window.stop)


def position_picker(
    label: str, key: str, param: str, labels: list[str], default: int, start: int = 0, help: str | None = None
) -> int:
    """A select box over token positions (``start`` … ``start + len(labels) - 1``), kept in the link."""
    options = list(range(start, start + len(labels)))
    names = unique_labels(labels, start)
    kept(key, default, param, INT, fix=one_of(options))
    return st.selectbox(label, options, key=key, format_func=lambda p: names[p - start], help=help)
