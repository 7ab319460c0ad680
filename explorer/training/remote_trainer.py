"""The proxy that makes a ``Trainer`` in a worker process (``explorer.training.workers``) look like a local
one: public method calls are forwarded over the pool's pipe, fixed data is fetched once, and a start that
waits for a training slot reports ``QUEUED``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Protocol

from explorer.training.status import FAILED, RUNNING, TrainerStatus
from explorer.training.worker_process import Method

QUEUED = "queued"  # a start waiting for a free training slot (shown to users like the Trainer's states)
LIVE_STATES = (RUNNING, QUEUED)  # a run under way or about to be: a page keeps watching it
# The Trainer's data attributes are fixed at construction (a live learning-rate change goes through a
# method), so each is fetched from the worker once; as is ``info()``, which reports only those.
CACHED_METHODS = ("info",)


class TrainingLost(RuntimeError):
    """The worker process that held a trainer is gone (killed, crashed) or the trainer was closed."""


class RunOpenElsewhere(RuntimeError):
    """A run asked for by its id is still shown by another connected session (another window or tab)."""


class Pool(Protocol):
    """What a proxy needs of the pool that made it (``workers.TrainingPool``): the pool makes proxies and
    imports this module; a proxy only calls back into the pool, so it knows it by these methods alone."""

    max_trainings: int

    def _call(self, trainer_id: int, op: str, name: str, args: tuple = (), kwargs: dict | None = None) -> Any: ...

    def queue_position(self, trainer_id: int) -> int | None: ...

    def _close(self, trainer_id: int) -> None: ...


class RemoteTrainer:
    """A ``Trainer`` that lives in a worker process, used like a local one.

    Public method calls go to the worker (arguments and results are pickled); data attributes and
    ``CACHED_METHODS`` are fetched once. ``status()`` reports ``QUEUED`` while a start waits for a slot and
    ``FAILED`` once the worker is gone or the trainer was closed; every other call then raises
    ``TrainingLost``.
    """

    def __init__(self, pool: Pool, trainer_id: int, run_id: str | None = None):
        self._pool = pool
        self._id = trainer_id
        self.run_id = run_id  # names the run in a link, so a reloaded page can attach to it again
        self._attributes: dict[str, Any] = {}
        self._methods: set[str] = set()  # names known to be methods (a bound partial would be a cycle)
        self._last_status: TrainerStatus | None = None  # what status() shows once the trainer is gone
        self._snapshots: dict = {}  # step -> Snapshot taken at exactly that step (without parameters)
        self._lost: str | None = None  # why the worker is gone
        self._closed_message: str | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._methods:
            return functools.partial(self._forward_call, name)
        if name in self._attributes:
            return self._attributes[name]
        self._check()
        value = self._pool._call(self._id, "getattr", name)
        if isinstance(value, Method):
            self._methods.add(name)
            return functools.partial(self._forward_call, name)
        self._attributes[name] = value
        return value

    def _forward_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in CACHED_METHODS and not args and not kwargs:
            key = f"{name}()"
            if key not in self._attributes:
                self._attributes[key] = self._forward(name, args, kwargs)
            return self._attributes[key]
        return self._forward(name, args, kwargs)

    def _forward(self, name: str, args: tuple, kwargs: dict) -> Any:
        self._check()
        return self._pool._call(self._id, "call", name, args, kwargs)

    def _check(self) -> None:
        if self._lost or self._closed_message:
            raise TrainingLost(self._lost or self._closed_message)

    def status(self) -> TrainerStatus:
        """The trainer's status, with ``QUEUED`` and the queue position while its start waits."""
        if self._lost:
            return self._final(FAILED, self._lost)
        if self._closed_message:
            return self._final(FAILED, self._closed_message)
        try:
            status = self._forward("status", (), {})
        except TrainingLost as error:
            return self._final(FAILED, self._lost or str(error))
        self._last_status = status
        position = self._pool.queue_position(self._id)
        if position is not None:
            ahead = "you are next" if position == 1 else f"{position - 1} ahead of you"
            status = dataclasses.replace(
                status,
                state=QUEUED,
                message=(
                    f"Waiting for a free training slot ({ahead}): this server runs at most "
                    f"{self._pool.max_trainings} training(s) at once."
                ),
            )
        return status

    def snapshot(self, step: int | None = None):
        """The trainer's ``snapshot(step)``. One taken at exactly ``step`` never changes (until a reset,
        which goes through this proxy), so it crosses the pipe once: a replay reads every saved step."""
        if step is not None and step in self._snapshots:
            return self._snapshots[step]
        snapshot = self._forward("snapshot", (step,), {})
        if snapshot is not None and step == snapshot.step:
            self._snapshots[step] = snapshot
        return snapshot

    def snapshot_steps(self) -> tuple[int, ...]:
        """The trainer's saved steps; the copies kept here follow its thinning (memory stays bounded)."""
        steps = self._forward("snapshot_steps", (), {})
        for gone in set(self._snapshots) - set(steps):
            del self._snapshots[gone]
        return steps

    def reset(self) -> None:
        self._snapshots.clear()
        return self._forward("reset", (), {})

    def queue_position(self) -> int | None:
        """1 if this trainer's start runs next, ...; None if it is not waiting."""
        return self._pool.queue_position(self._id)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stops training (or leaves the queue). Nothing to stop once the worker is gone."""
        if self._lost or self._closed_message:
            return None
        try:
            return self._forward("stop", (), {"timeout": timeout})
        except TrainingLost:
            return None

    def close(self) -> None:
        """Stops the training and frees the trainer in its worker; the proxy then reports FAILED with the
        final progress (a page keeps the closed run's loss curve), and nothing else of it can be read."""
        if not (self._lost or self._closed_message):
            try:
                self._forward("stop", (), {"timeout": 1.0})
                self._last_status = self._forward("status", (), {})
            except TrainingLost:
                pass
        self._closed_message = self._closed_message or "This training was closed."
        self._pool._close(self._id)

    def _final(self, state: str, message: str) -> TrainerStatus:
        """The last status seen (there is one from the start: see ``TrainingPool.trainer``), marked as ended:
        a view keeps its loss curve."""
        if self._last_status is None:  # lost while being made: the caller of TrainingPool.trainer hears it
            raise TrainingLost(message)
        return dataclasses.replace(self._last_status, state=state, message=message)
