"""Slow first computations (a part-of-speech probe fitted per model, the vocabulary's projection) run in a
background thread, once per process, while the page draws everything else: the view that needs one shows a
progress bar that follows its stages and redraws the page when the result is there.

A job is shared by every session that asks for the same thing (its key names the model), like the
resources of ``pages.common.resources``; its thread writes only the job itself, never a session's state,
and the page reads the job (``wait_for``), as field-notes' pattern for background work in Streamlit says.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

KEPT = 16  # finished jobs kept in memory (a model's probe and projections); the oldest goes first
POLL_S = 0.5  # how often a waiting view looks at its job


@dataclass
class Job:
    """One background computation: how far it is, then its result or why there is none."""

    fraction: float = 0.0
    stage: str = "Waiting to start"
    result: Any = None
    problem: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, stage: str) -> None:
        """The work's progress callback: a fraction that only rises, and what it is doing now."""
        self.fraction, self.stage = max(self.fraction, min(max(float(fraction), 0.0), 1.0)), stage


_JOBS: dict[tuple, Job] = {}
_LOCK = threading.Lock()


def background_job(
    key: tuple,
    work: Callable[[Callable[[float, str], None]], Any],
    problem: Callable[[Exception], str | None],
    after: threading.Event | None = None,
) -> Job:
    """The job for ``key``, started on first request: ``work(report)`` runs in a thread at a lower OS priority
    (typing keeps the CPU first), after ``after`` is set (an engine's compile warm-up). An exception that
    ``problem`` turns into a sentence ends the job with that sentence; any other with a plain one, never a
    traceback on the page."""
    with _LOCK:
        if key in _JOBS:
            return _JOBS[key]
        finished = [k for k, job in _JOBS.items() if job.done.is_set()]
        for old in finished[: max(0, len(_JOBS) - KEPT + 1)]:
            del _JOBS[old]
        job = _JOBS[key] = Job()

    def run() -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        try:
            if after is not None and not after.is_set():
                job.report(0.0, "Waiting for the model's programs to compile")
                after.wait()
            job.result = work(job.report)
        except Exception as error:  # noqa: BLE001 - the page must say what happened, not show a traceback
            job.problem = problem(error) or f"This could not be computed: {type(error).__name__}: {error}"
        finally:
            job.fraction = 1.0
            job.done.set()

    threading.Thread(target=run, name=f"job-{key[0]}", daemon=True).start()
    return job


def _follow(job: Job, what: str) -> None:
    if job.done.is_set():
        st.rerun()  # the whole page, which now draws the result
    st.progress(job.fraction, text=f"{what}: {job.stage}… ({job.fraction:.0%})")


def wait_for(job: Job, what: str, patience: float = 0.0) -> Any | None:
    """The job's result once it is done (None after an ``st.info`` saying why, if it failed). Until then a
    progress bar that follows the job and redraws the page when it ends; returns None without waiting
    longer than ``patience`` seconds (a quick job then shows no bar at all), so the rest of the page is
    drawn at once."""
    if patience > 0:
        job.done.wait(patience)
    if job.done.is_set():
        if job.problem is not None:
            st.info(job.problem)
            return None
        return job.result
    st.fragment(run_every=POLL_S)(_follow)(job, what)
    return None
