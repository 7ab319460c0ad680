"""Resources built once per process and shared by every session (``st.cache_resource``/``st.cache_data``),
never mutated: tokenizers, compiled engines, the default model and MiniLM, per-model analyses (the slow ones
as background jobs with progress, ``pages.common.jobs``), and the pool of training worker processes. The
pretrained models a server offers by folder or Hub id are loaded in ``pages.common.server_models``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import streamlit as st

from explorer import DEFAULT_CHECKPOINT
from explorer.interpret.analysis import Projection, vocabulary_projection
from explorer.interpret.head_roles import bundle_head_roles
from explorer.interpret.pos_probe import probe_bundle
from explorer.model import checkpoint, pretrained
from explorer.model.bundle import ModelBundle
from explorer.model.config import ModelConfig
from explorer.model.encoder import init_params
from explorer.model.inference import InferenceEngine, enable_compilation_cache, use_synchronous_dispatch
from explorer.text.brown import CorpusMissing
from explorer.text.tokenizer import Tokenizer
from explorer.training.config import LiveSettings
from explorer.training.workers import TrainingPool
from pages.common.jobs import Job, background_job


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


# Per-model analyses, computed once per model and shared: bundles never change, so a model's source, its
# architecture and its training step name it (``id`` separates two bundles that share all three).


def _bundle_key(bundle: ModelBundle) -> tuple:
    return (id(bundle), bundle.source, bundle.config, bundle.info.get("steps"))


_ROLES: dict[tuple, tuple[list[list[dict]] | None, str | None]] = {}  # _bundle_key -> (roles, problem)
_ROLES_STARTED: set[tuple] = set()
_ROLES_LOCK = threading.Lock()
_ROLES_KEPT = 16  # models whose roles stay in memory


def _compute_head_roles(bundle: ModelBundle, engine: InferenceEngine) -> tuple[list[list[dict]] | None, str | None]:
    key = _bundle_key(bundle)
    with _ROLES_LOCK:
        if key in _ROLES:
            return _ROLES[key]
    try:
        result = bundle_head_roles(bundle, engine), None
    except (CorpusMissing, ValueError) as error:
        result = None, f"Head roles need held-out English sentences: {error}"
    with _ROLES_LOCK:
        if len(_ROLES) >= _ROLES_KEPT:
            oldest = next(iter(_ROLES))
            del _ROLES[oldest]
            _ROLES_STARTED.discard(oldest)  # computed again if that model comes back
        _ROLES[key] = result
    return result


def model_head_roles(bundle: ModelBundle) -> tuple[list[list[dict]] | None, str | None]:
    """Every head's role and score (``explorer.interpret.head_roles``), or None and why not. ``_ROLES`` is the one
    cache (the background labelling fills it too); a spinner shows only when they must be computed here."""
    with _ROLES_LOCK:
        known = _ROLES.get(_bundle_key(bundle))
    if known is not None:
        return known
    with st.spinner("Labelling every head over held-out sentences…"):
        return _compute_head_roles(bundle, get_engine(bundle.config))


def head_roles_if_ready(bundle: ModelBundle) -> list[list[dict]] | None:
    """The model's head roles if they are already known, else None, after starting their computation in a
    background thread (once per model) so a later run shows them. The page never waits for them."""
    key = _bundle_key(bundle)
    with _ROLES_LOCK:
        if key in _ROLES:
            return _ROLES[key][0]
        if key in _ROLES_STARTED:
            return None
        _ROLES_STARTED.add(key)
    engine = get_engine(bundle.config)
    report = warmup_report(bundle.config)

    def background() -> None:
        # After the engine's own compiles, and at the lowest priority: typing keeps the CPU first.
        if report is not None:
            report.done.wait()
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        _compute_head_roles(bundle, engine)

    threading.Thread(target=background, name=f"head-roles-{id(bundle)}", daemon=True).start()
    return None


def _needs_corpus(what: str) -> Callable[[Exception], str | None]:
    def problem(error: Exception) -> str | None:
        return (
            f"{what} needs the tagged English corpus: {error}"
            if isinstance(error, (CorpusMissing, ValueError))
            else None
        )

    return problem


def pos_probe_job(bundle: ModelBundle) -> Job:
    """The part-of-speech probe of ``bundle`` (``explorer.interpret.pos_probe``), fitted once per model in the
    background (``pages.common.jobs``), with its stages for a progress bar."""
    engine, report = get_engine(bundle.config), warmup_report(bundle.config)
    return background_job(
        ("part-of-speech probe", *_bundle_key(bundle)),
        lambda progress: probe_bundle(bundle, engine, progress=progress),
        _needs_corpus("The probe"),
        after=report.done if report is not None else None,
    )


def vocabulary_projection_job(bundle: ModelBundle, components: int) -> Job:
    """Every row of the embedding table on its top principal axes (``explorer.interpret.analysis``), once per
    model and number of axes, in the background: 30k rows of MiniLM take seconds."""

    def work(progress: Callable[[float, str], None]) -> Projection:
        progress(0.1, f"Projecting {bundle.config.vocab_size:,} rows of the embedding table on their principal axes")
        return vocabulary_projection(bundle.params, bundle.config, components)

    return background_job(("vocabulary projection", components, *_bundle_key(bundle)), work, lambda error: None)


@st.cache_resource(show_spinner=False)
def training_pool() -> TrainingPool:
    """The worker processes every session's training runs in (``explorer.training.workers``), started once
    per server: at most ``EXPLORER_MAX_TRAININGS`` trainings at once, the rest queue. Each worker compiles
    the Train page's default setup as it starts (``LiveSettings`` holds it), at its idle priority, so the
    first Play of it shows a loss at once and the compile never slows a page in front of a user."""
    enable_compilation_cache()  # the workers use the same persistent compilation cache
    settings = LiveSettings()
    return TrainingPool(warm_up=(settings.model_config(), settings.train_config()))
