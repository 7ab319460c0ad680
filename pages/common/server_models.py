"""Pretrained models named by a folder or a Hugging Face Hub id, as the server offers them: each loaded once
per server in a background thread and shared read-only by every session that picks it.

Which ones a session may open is the server's choice: the admin's list in ``EXPLORER_MODELS``, and anything
typed only in a single-user run (``EXPLORER_OPEN_MODELS=1``, set by `make run`, never by `make serve`): a
shared server must not read arbitrary paths or download arbitrary models for whoever asks.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field

from explorer.model import pretrained
from explorer.model.bundle import ModelBundle

MODELS_ENV = "EXPLORER_MODELS"  # comma-separated folders or Hub ids every session may pick
OPEN_MODELS_ENV = "EXPLORER_OPEN_MODELS"  # "1": the picker also opens a folder or Hub id the user types
LOADING, READY, FAILED = "loading", "ready", "failed"


def offered_models() -> tuple[str, ...]:
    """The admin's models (``EXPLORER_MODELS``), in their order, each once."""
    entries = (entry.strip() for entry in os.environ.get(MODELS_ENV, "").split(","))
    return tuple(dict.fromkeys(entry for entry in entries if entry))


def open_models() -> bool:
    """Whether this is a single-user run, whose user may open any folder or Hub id (``EXPLORER_OPEN_MODELS``)."""
    return os.environ.get(OPEN_MODELS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def spec_label(spec: str) -> str:
    """How the picker names a folder (by its name) or a Hub id (as it is)."""
    return f"{spec.rstrip('/').rsplit('/', 1)[-1]} (folder)" if spec.startswith(("/", ".", "~")) else spec


@dataclass
class ModelLoad:
    """One pretrained model loading (or loaded) in the background, shared by every session that picks it.

    The loading thread writes only this object, under its lock; pages read a ``snapshot``.
    """

    spec: str
    status: str = LOADING
    message: str = "Starting…"
    bundle: ModelBundle | None = None
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def say(self, message: str) -> None:
        with self.lock:
            self.message = message

    def finish(self, bundle: ModelBundle | None, problem: str | None) -> None:
        with self.lock:
            self.bundle, self.status = bundle, READY if bundle is not None else FAILED
            self.message = problem or "Ready."

    def snapshot(self) -> tuple[str, str, ModelBundle | None, float]:
        """``(status, message, bundle, seconds since it started)``."""
        with self.lock:
            return self.status, self.message, self.bundle, time.monotonic() - self.started


_LOADS: dict[str, ModelLoad] = {}
_LOADS_LOCK = threading.Lock()


def _load_in_background(load: ModelLoad) -> None:
    # Reading and converting a large model's weights is CPU work: the pages of everyone else come first.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    try:
        load.finish(pretrained.load_model(load.spec, progress=load.say), None)
    except (pretrained.PretrainedUnavailable, ValueError, OSError) as error:
        load.finish(None, str(error))
    except Exception as error:  # noqa: BLE001 - whatever went wrong, the page says it in a sentence
        load.finish(None, f"{load.spec} could not be loaded ({type(error).__name__}: {error}).")


def model_load(spec: str, retry: bool = False) -> ModelLoad:
    """The load of ``spec`` (a folder or a Hub id), started in a background thread on first request: each
    model is read once per server, its bundle shared read-only by every session. ``retry`` starts a failed
    load again (the user asked for it once more: a folder may have been fixed, a network come back)."""
    with _LOADS_LOCK:
        load = _LOADS.get(spec)
        if load is not None and not (retry and load.snapshot()[0] == FAILED):
            return load
        load = _LOADS[spec] = ModelLoad(spec)
    threading.Thread(target=_load_in_background, args=(load,), name=f"load-{spec}", daemon=True).start()
    return load
