"""Shared state for every page: cached resources (built once per process) and per-user session state.

Resources from ``st.cache_resource`` are shared by all sessions and never mutated. Anything a user can
change (their text, their model after training, their selections) lives in ``st.session_state``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explorer import DEFAULT_CHECKPOINT, checkpoint, pretrained
from explorer.analysis import token_window
from explorer.brown import CorpusMissing
from explorer.bundle import ModelBundle
from explorer.config import ModelConfig
from explorer.head_roles import bundle_head_roles, role_badge
from explorer.inference import InferenceEngine, Inspection, enable_compilation_cache, use_synchronous_dispatch
from explorer.model import init_params
from explorer.pipeline import EmptyText, PreparedText, prepare_text
from explorer.pos_probe import PosProbe, probe_bundle
from explorer.tokenizer import Tokenized, Tokenizer, display_text
from explorer.trainer import DIVERGED, FINISHED, RUNNING, STOPPED
from explorer.vocab import Vocab

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
TEXT_KEY = "text"  # the sentence every page shows; also its URL query parameter (?text=...)
TEXT_WIDGET_KEY = "sidebar_text"  # the text area's own widget key
URL_MAX_CHARS = 2000  # longer texts stay out of the URL (browsers and proxies cap address length)
# No [MASK] here: a mask draws most of layer 1's attention to itself, and the default view should show the
# heads' own patterns (previous token, next token, function words). The Fill mask page offers examples.
DEFAULT_TEXT = "She opened the door and walked into the room where her father was waiting."
# Token axes longer than this are shown one window at a time (a 512 x 512 heatmap would stall a browser).
WINDOW = 96


@st.cache_resource(show_spinner="Loading the tokenizer…")
def get_tokenizer(name: str) -> Tokenizer:
    return Tokenizer(name)


@dataclass
class WarmupReport:
    """Compile times of an engine's buckets (seconds per bucket length), filled once at start-up."""

    seconds: dict[int, float] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


_WARMUPS: dict[ModelConfig, WarmupReport] = {}


def _warm(engine: InferenceEngine, params: Any, lengths: tuple[int, ...], report: WarmupReport) -> None:
    for length in lengths:
        start = time.perf_counter()
        engine.warmup(params, (length,))
        report.seconds[length] = time.perf_counter() - start


@st.cache_resource(show_spinner=False)
def get_engine(config: ModelConfig) -> InferenceEngine:
    """One engine per architecture; its compiled programs take parameters as input, so any user's
    trained parameters for the same config run without a compile.

    Every bucket is compiled in a background thread, shortest first, so the first page appears without
    waiting and a typed sentence (short buckets, ready within about a second) never waits for a compile.
    Only the engine's own compile cache is touched by that thread, never any user's state.
    """
    enable_compilation_cache()
    use_synchronous_dispatch()
    engine = InferenceEngine(config)
    report = WarmupReport()
    _WARMUPS[config] = report

    def background() -> None:
        try:
            # Tracing the initialiser for parameter shapes takes ~1 s: also kept off the page's path.
            shapes = jax.eval_shape(lambda: init_params(config))
            params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)  # values do not matter
            _warm(engine, params, engine.buckets, report)
        finally:
            report.done.set()

    # Not a daemon: finishing a compile beats being killed in the middle of one at interpreter exit.
    threading.Thread(target=background, name=f"warmup-{id(engine)}", daemon=False).start()
    return engine


def warmup_report(config: ModelConfig) -> WarmupReport | None:
    """Compile times recorded when the engine for ``config`` was built (None before that)."""
    return _WARMUPS.get(config)


@st.cache_resource(show_spinner="Loading the default model…")
def default_bundle() -> tuple[ModelBundle, str | None]:
    """The shipped checkpoint, or (when it is missing or unreadable) a labelled random model."""
    return checkpoint.load_default(DEFAULT_CHECKPOINT)


def _ended_training() -> tuple[Any, int] | None:
    """This user's trainer and its step, if its training has ended with parameters worth showing
    (finished, stopped, or blown up, in which case it holds the last finite ones); else None."""
    trainer = st.session_state.get(TRAINER_KEY)
    if trainer is None:
        return None
    status = trainer.status()
    if status.state not in (FINISHED, STOPPED, DIVERGED) or status.step == 0:
        return None  # running (never replace the model mid-run), idle after a reset, or failed
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


@st.cache_resource(show_spinner="Loading the pretrained MiniLM-L6…")
def pretrained_bundle() -> tuple[ModelBundle | None, str | None]:
    """all-MiniLM-L6-v2 (shared by every session, never mutated), or None and why it is not here."""
    problem = pretrained.available()
    if problem:
        return None, problem
    try:
        return pretrained.load_minilm(), None
    except (pretrained.PretrainedUnavailable, ValueError) as error:
        return None, f"The pretrained model could not be loaded: {error}"


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


# ----------------------------------------------------------------------------------------------------
# The shared sentence: one text for every page, kept in session state and in the URL.


def sync_url(name: str, value: str, default: str) -> None:
    """Mirrors one value into the URL's query string, leaving it out when it is the default (or too long
    to share in a link)."""
    params = st.query_params
    if value == default or len(value) > URL_MAX_CHARS:
        if name in params:
            del params[name]
    elif params.get(name) != value:
        params[name] = value


def url_value(name: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    """A value from the URL's query string, parsed, or ``default`` if it is missing or unreadable."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError):
        return default


def _store_text() -> None:
    st.session_state[TEXT_KEY] = st.session_state[TEXT_WIDGET_KEY]


def text_box() -> None:
    """The text area every page shows in its sidebar.

    The sentence lives under ``TEXT_KEY`` in session state (not under the widget's key, which Streamlit
    forgets when a page without the widget runs), is seeded once from ``?text=`` and mirrored back to
    the URL, so a link shares exactly this sentence.
    """
    state = st.session_state
    if TEXT_KEY not in state:
        state[TEXT_KEY] = url_value(TEXT_KEY, DEFAULT_TEXT)
    state[TEXT_WIDGET_KEY] = state[TEXT_KEY]
    st.sidebar.text_area(
        "Text",
        key=TEXT_WIDGET_KEY,
        on_change=_store_text,
        height=110,
        placeholder="Type a sentence…",
    )
    # No help= on this widget: its tooltip button would also be labelled "Text" for a browser test.
    st.sidebar.caption(
        "Every page follows this text (Ctrl+Enter or click outside to apply); the page address "
        "keeps it, so a link shares exactly this view."
    )
    sync_url(TEXT_KEY, state[TEXT_KEY], DEFAULT_TEXT)
    if len(state[TEXT_KEY]) > URL_MAX_CHARS:
        st.sidebar.caption(f"The text is longer than {URL_MAX_CHARS} characters, so it is not put in the link.")


def route_through_app() -> None:
    """Makes a deep link (``/attention?text=...``) to a freshly started server go through ``app.py``.

    Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until ``st.navigation``
    has run once in the process; until then a deep link runs the page file alone (no router, no wide
    layout, every file in ``pages/`` listed as a page). Clearing that flag and rerunning routes the
    request through ``app.py`` like every later one.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without the flag: nothing to fix
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _watch_training() -> None:
    """While this user's training runs, says so in the sidebar; when it ends, reruns the page so the
    page and the sidebar show the trained model without waiting for the user's next click."""
    trainer = st.session_state.get(TRAINER_KEY)
    status = trainer.status() if trainer is not None else None
    if status is None or status.state != RUNNING:
        publish_trained()
        st.rerun()  # the whole page; without a running trainer the sidebar stops drawing this fragment
    st.caption(
        f"Training on the Train page: step {status.step} of {status.total_steps}. Its model replaces this one "
        "when it ends."
    )


def sidebar(watch_training: bool = True) -> None:
    """The thin sidebar of every page: the text box and which model the pages show.

    ``watch_training``: while this user's training runs, tick twice a second to pick up its end (the
    Train page does that in its own live view).
    """
    route_through_app()
    text_box()
    publish_trained()
    model_choice()
    options = [c for c in MODEL_CHOICES if c != OWN or MODEL_KEY in st.session_state]
    # As with the text box: the choice lives under its own key, which survives pages switching; the
    # widget's key is reset to it on every run.
    st.session_state[CHOICE_WIDGET_KEY] = st.session_state[CHOICE_KEY]
    st.sidebar.selectbox(
        "Model",
        options,
        key=CHOICE_WIDGET_KEY,
        format_func=MODEL_CHOICES.get,
        on_change=lambda: st.session_state.update({CHOICE_KEY: st.session_state[CHOICE_WIDGET_KEY]}),
    )
    sync_url("model", st.session_state[CHOICE_KEY] if st.session_state[CHOICE_KEY] != OWN else DEFAULT, DEFAULT)
    if st.session_state[CHOICE_KEY] == PRETRAINED and pretrained_bundle()[1]:
        st.sidebar.warning(f"{pretrained_bundle()[1]} Showing the default model meanwhile.")
    bundle = current_bundle()
    st.sidebar.markdown(f"**Model:** {bundle.source}")
    if not bundle.config.output_head:
        st.sidebar.caption("A sentence encoder without a prediction head: views of predictions say so.")
    elif not bundle.trained:
        st.sidebar.warning("Untrained model: random weights, so attention patterns and predictions are noise.")
    else:
        st.sidebar.caption(f"Trained on the **{bundle.task}** task.")
    problem = default_bundle()[1]
    if problem and bundle is default_bundle()[0]:
        st.sidebar.caption(problem)
    trainer = st.session_state.get(TRAINER_KEY)
    if watch_training and trainer is not None and trainer.status().state == RUNNING:
        with st.sidebar:
            st.fragment(run_every=0.5)(_watch_training)()


def current_text() -> str:
    value = st.session_state.get(TEXT_KEY, DEFAULT_TEXT)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Sentence:
    """The current text against the current model: its tokens (``explorer.pipeline.PreparedText``) and
    the engine to run them."""

    bundle: ModelBundle
    prepared: PreparedText

    @property
    def tokenized(self) -> Tokenized:
        return self.prepared.tokens

    @property
    def model_ids(self) -> np.ndarray:  # [T] int32
        return self.prepared.model_ids

    @property
    def unknown(self) -> np.ndarray:  # [T] bool: not in the model's vocabulary, fed as [UNK]
        return self.prepared.unknown

    @property
    def labels(self) -> list[str]:
        return self.prepared.labels

    @property
    def engine(self) -> InferenceEngine:
        """Fetched on first use, so a page that only tokenizes never waits for the compile warm-up."""
        return get_engine(self.bundle.config)

    def run(
        self, head_mask: np.ndarray | None = None, causal: bool = False, model_ids: np.ndarray | None = None
    ) -> Inspection:
        ids = self.model_ids if model_ids is None else model_ids
        return self.engine.run(self.bundle.params, ids, head_mask=head_mask, causal=causal)

    def __len__(self) -> int:
        return len(self.model_ids)


def prepare(text: str, bundle: ModelBundle, messages: bool = True) -> Sentence | None:
    """Tokenizes ``text`` for ``bundle`` (``explorer.pipeline.prepare_text``) and shows its notices.

    Returns None (after an ``st.info``) when there is nothing to run: empty or whitespace-only text.
    """
    try:
        prepared = prepare_text(bundle, text)
    except EmptyText as error:
        if messages:
            st.info(f"{error} Use the **Text** box in the sidebar.")
        return None
    if messages:
        for notice in prepared.notices:
            st.warning(notice)
    return Sentence(bundle, prepared)


def current_sentence(messages: bool = True) -> Sentence | None:
    """The shared text against this user's model (see ``prepare``)."""
    return prepare(current_text(), current_bundle(), messages)


def model_token_labels(bundle: ModelBundle) -> list[str]:
    """A readable label for every row of the model's vocabulary (specials included)."""
    return _vocab_labels(bundle.vocab)


@st.cache_data(
    show_spinner=False, max_entries=8, hash_funcs={Vocab: lambda vocab: (vocab.encoding, vocab.tiktoken_ids)}
)
def _vocab_labels(vocab: Vocab) -> list[str]:
    return [display_text(vocab.token_text(i)) for i in range(vocab.size)]


# ----------------------------------------------------------------------------------------------------
# Drawing helpers


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
    st.plotly_chart(fig, key=key, config=plotly_config(key), theme=None)
    if csv is None and json is None:
        return
    downloads = (("csv", csv, "text/csv"), ("json", json, "application/json"))
    for column, (kind, make, mime) in zip(st.columns([1, 1, 6]), downloads, strict=False):
        if make is None:
            continue
        column.download_button(
            kind.upper(),
            make,
            file_name=f"{key}.{kind}",
            mime=mime,
            key=f"{key}_{kind}",
            on_click="ignore",
            type="tertiary",
            icon=":material/download:",
        )


def window_control(length: int, key: str) -> slice:
    """For inputs longer than ``WINDOW`` tokens, a slider that pages through positions; else all of them."""
    if length <= WINDOW:
        return slice(0, length)
    st.session_state.setdefault(key, 0)
    # The text may have got shorter since the slider was set: clip its value to the new range first.
    st.session_state[key] = token_window(length, st.session_state[key], WINDOW).start
    start = st.slider(
        f"Long input: show positions from (window of {WINDOW})",
        min_value=0,
        max_value=length - WINDOW,
        step=8,
        key=key,
    )
    return token_window(length, start, WINDOW)


# ----------------------------------------------------------------------------------------------------
# Per-model analyses, computed once per model and shared: bundles never change, so a model's source, its
# architecture and its training step name it (``id`` separates two bundles that share all three).


def _bundle_key(bundle: ModelBundle) -> tuple:
    return (id(bundle), bundle.source, bundle.config, bundle.info.get("steps"))


@st.cache_data(
    show_spinner="Labelling every head over held-out sentences…", max_entries=16, hash_funcs={ModelBundle: _bundle_key}
)
def model_head_roles(bundle: ModelBundle) -> tuple[list[list[dict]] | None, str | None]:
    """Every head's role and score (``explorer.head_roles``), or None and why not."""
    try:
        return bundle_head_roles(bundle, get_engine(bundle.config)), None
    except (CorpusMissing, ValueError) as error:
        return None, f"Head roles need held-out English sentences: {error}"


@st.cache_data(
    show_spinner="Fitting a part-of-speech probe at every depth…", max_entries=8, hash_funcs={ModelBundle: _bundle_key}
)
def model_pos_probe(bundle: ModelBundle) -> tuple[PosProbe | None, str | None]:
    """The part-of-speech probe of ``bundle`` (``explorer.pos_probe``), or None and why not."""
    try:
        return probe_bundle(bundle, get_engine(bundle.config)), None
    except (CorpusMissing, ValueError) as error:
        return None, f"The probe needs the tagged English corpus: {error}"


def head_badge(roles: list[list[dict]] | None, layer: int, head: int) -> str:
    """A short role badge for one head (0-based layer and head), or "" when roles are unknown."""
    if roles is None:
        return ""
    return f" {role_badge(roles[layer][head]['role'])}"
