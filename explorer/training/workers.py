"""Training in worker processes that many users share: a pool of niced processes, a server-wide limit on
concurrent trainings with a queue, and a proxy that makes a Trainer in a worker look like a local one.

Why processes: a training thread inside the web server's process competes with every other user's edits
for the GIL and the cores (edits there slowed ~3.7x while one session trained). A worker process at a
lower OS priority gives the server's threads the CPU first, and a worker that crashes or is killed takes
only its own trainings with it.

- ``TrainingPool`` pre-starts worker processes with the "spawn" context (forking a process that has JAX
  running is unsafe), each niced and under ``SCHED_IDLE`` (see ``idle``), with JAX's persistent
  compilation cache on and ``explorer`` imported, so the first chunk after Start pays neither the process
  start nor the imports, and (``warm_up``) with the app's default setup already compiled. What runs
  inside a worker is ``explorer/training/worker_process.py``; its process and pipe, seen from here,
  ``worker_link.py``.
  ``explorer/__init__.py`` runs in every worker too, so the data-parallel step gets its CPU devices
  (``EXPLORER_CPU_DEVICES``) there as in the server.
- At most ``max_trainings`` trainings run at once (``EXPLORER_MAX_TRAININGS``, by default half the
  cores: the rest stays with the web server). A start beyond that waits in a first-come queue; the
  proxy reports it as ``QUEUED`` with its position.
- Each ``RemoteTrainer`` forwards any public method call (name, args, kwargs) to its ``Trainer`` in the
  worker and returns the result (pickled over a pipe), so new Trainer methods work through it unchanged.
  Only the methods that start training (``starting_methods``) go through the queue. A ``Snapshot``
  crosses without its parameters (they stay in the worker; ``bundle(step)`` makes a model of them).
- One trainer per ``owner`` (a browser session): making a new one closes the owner's previous one.
- An ``alive`` callable per trainer (the page passes one that asks the web framework whether the session
  is still connected) is checked every ``check_every`` seconds. A training that runs while its session is
  gone is closed after ``abandon_after`` seconds (which stops it and frees its memory); one that is not
  running (paused, finished) is kept for ``keep_paused`` seconds, so a reloaded page can take it up again.
- Every trainer has a run id (``RemoteTrainer.run_id``, random, safe in a link). ``attach(run_id, …)``
  gives a new session a proxy of a kept run whose session is gone (a reload); while that session is still
  connected (the run is open in another window) it raises ``RunOpenElsewhere``.
- A worker that dies is noticed at once (its pipe closes): its trainers report ``FAILED``, their slots
  free up, and a fresh worker replaces it.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import multiprocessing
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from explorer import available_cores
from explorer.training.remote_trainer import RemoteTrainer, RunOpenElsewhere, TrainingLost
from explorer.training.worker_link import Reply, Worker

ENV_MAX_TRAININGS = "EXPLORER_MAX_TRAININGS"
# Calls that make a trainer train need a slot; a single Step too: it runs in the worker like Play.
STARTING_METHODS = ("start", "resume", "play", "step")
LEAVING_METHODS = ("stop", "reset", "pause", "close")  # calls that give up a queued start


_POOLS: weakref.WeakSet[TrainingPool] = weakref.WeakSet()


@atexit.register
def _closing() -> None:
    """At exit multiprocessing terminates the workers (they are daemons): replacing them would only start
    processes that die at once. This runs first (atexit is last-in, first-out)."""
    for pool in list(_POOLS):
        pool._closed.set()


def default_max_trainings() -> int:
    """``EXPLORER_MAX_TRAININGS``, or half the cores (at least one): a training's data-parallel step uses
    several cores, and the web server needs the rest to stay responsive."""
    wanted = os.environ.get(ENV_MAX_TRAININGS, "").strip()
    if wanted.isdigit() and int(wanted) >= 1:
        return int(wanted)
    if wanted:
        raise ValueError(f"{ENV_MAX_TRAININGS} must be a positive whole number, not {wanted!r}.")
    return max(1, available_cores() // 2)


@dataclasses.dataclass
class _Entry:
    """The pool's record of one remote trainer."""

    trainer_id: int
    worker: Worker
    owner: Any
    alive: Callable[[], bool] | None
    proxy: weakref.ref  # the newest proxy: a session that attaches gets a new one
    run_id: str
    proxy_serial: int = 0  # which proxy is the newest: an older one's collection does not count
    proxy_dropped: bool = False  # the newest proxy was garbage-collected (its session's state went)
    gone_since: float | None = None


class TrainingPool:
    """Worker processes shared by every session of a server, and the queue for their training slots.

    Args:
      max_trainings: trainings that may run at once; None for ``default_max_trainings()``.
      workers: processes to keep (each hosts any number of trainers, running or not); None for
        ``max_trainings``, so trainings that run at once can each have a process.
      nice: how much lower than the server the workers' OS priority is.
      idle: also run the workers under Linux's ``SCHED_IDLE`` policy, so they get only the CPU time
        nothing else wants. Niceness is relative: a server that itself runs at nice 19 (or shares the
        machine with other niced work) gets no head start from a niced worker, but always does over an
        idle-policy one.
      abandon_after: seconds a running (or queued) trainer's ``alive`` may say False before the trainer is
        closed.
      keep_paused: seconds a trainer that is not running is kept after its session is gone (its ``alive``
        says False or its proxy was collected), for a reloaded page to ``attach`` to.
      check_every: seconds between liveness checks.
      cache_dir: JAX's persistent compilation cache directory (None: ``enable_compilation_cache``'s).
      warm_up: Trainer arguments (model config, train config) of a setup every worker compiles as soon
        as it starts (the app's default), so starting that setup skips the compile; None for none.
    """

    def __init__(
        self,
        max_trainings: int | None = None,
        workers: int | None = None,
        nice: int = 10,
        idle: bool = True,
        abandon_after: float = 20.0,
        keep_paused: float = 600.0,
        check_every: float = 5.0,
        cache_dir: str | None = None,
        starting_methods: tuple[str, ...] = STARTING_METHODS,
        warm_up: tuple | None = None,
    ):
        self.max_trainings = default_max_trainings() if max_trainings is None else int(max_trainings)
        if self.max_trainings < 1:
            raise ValueError("max_trainings must be at least 1.")
        self.abandon_after = abandon_after
        self.keep_paused = keep_paused
        self.check_every = check_every
        self.starting_methods = starting_methods
        self._context = multiprocessing.get_context("spawn")  # never fork a process running JAX
        self._settings = (nice, idle, cache_dir, warm_up)  # what every worker process starts with
        self._warm_up = warm_up
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._entries: dict[int, _Entry] = {}
        self._running: set[int] = set()  # trainers holding a training slot
        self._queue: deque[tuple[int, str, tuple, dict]] = deque()  # starts waiting for a slot
        self._closed = threading.Event()
        self._dropped: deque[tuple[int, int]] = deque()  # (trainer, proxy serial) of garbage-collected proxies
        self._serials = itertools.count(1)
        _POOLS.add(self)
        self._workers = [self._spawn() for _ in range(workers or self.max_trainings)]
        threading.Thread(target=self._monitor, name="explorer-training-monitor", daemon=True).start()

    # ----------------------------------------------------------------------------------------------
    # Public

    def trainer(self, *args: Any, owner: Any = None, alive: Callable[[], bool] | None = None, **kwargs: Any):
        """Builds a ``Trainer(*args, **kwargs)`` in a worker and returns its proxy. Raises what the Trainer
        raises (a ``ValueError`` for settings it refuses). A previous trainer of the same ``owner`` is
        closed once the new one exists."""
        with self._lock:
            if self._closed.is_set():
                raise TrainingLost("The training pool is shut down.")
            live = [w for w in self._workers if not w.dead]
            if not live:
                raise TrainingLost("No training process is running just now; try again in a moment.")
            worker = min(live, key=lambda w: len(w.trainers))
            trainer_id = next(self._ids)
            worker.trainers.add(trainer_id)
        try:
            self._wait(worker.request((self._request_id(), trainer_id, "create", "", args, kwargs)))
        except BaseException:
            with self._lock:
                worker.trainers.discard(trainer_id)
            raise
        run_id = secrets.token_urlsafe(9)
        proxy = RemoteTrainer(self, trainer_id, run_id)
        with self._lock:
            previous = [e.proxy() for e in self._entries.values() if owner is not None and e.owner == owner]
            entry = _Entry(trainer_id, worker, owner, alive, weakref.ref(proxy), run_id)
            self._entries[trainer_id] = entry
            self._watch(entry, proxy)
        for old in previous:
            if old is not None:
                old.close()
        proxy.status()  # a first status, so a proxy whose worker dies at once still has one to show
        return proxy

    def attach(
        self, run_id: str, owner: Any = None, alive: Callable[[], bool] | None = None, wait: float = 3.0
    ) -> RemoteTrainer | None:
        """A new proxy of the kept trainer with this ``run_id``, now owned by ``owner`` (checked with
        ``alive``), or None if this pool has no such run (it ended and was closed, or it ran elsewhere).

        Raises ``RunOpenElsewhere`` while the run's session is still connected: one run, one window. A
        reloaded page's old session may take a moment to disconnect, so its ``alive`` is asked again for
        up to ``wait`` seconds first.
        """
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                entry = next((e for e in self._entries.values() if e.run_id == run_id), None)
                if entry is None:
                    return None
                elsewhere = entry.owner != owner and not entry.proxy_dropped and self._is_alive(entry)
                if not elsewhere:
                    proxy = RemoteTrainer(self, entry.trainer_id, run_id)
                    entry.owner, entry.alive, entry.proxy = owner, alive, weakref.ref(proxy)
                    entry.proxy_dropped, entry.gone_since = False, None
                    self._watch(entry, proxy)
                    break
            if time.monotonic() >= deadline:
                raise RunOpenElsewhere(
                    "This run is open in another window or tab: a run is shown in one window at a time."
                )
            time.sleep(0.2)
        proxy.status()
        return proxy

    def queue_position(self, trainer_id: int) -> int | None:
        """1 for the next start to run, 2 for the one after, ...; None if not waiting."""
        with self._lock:
            for position, queued in enumerate(self._queue, 1):
                if queued[0] == trainer_id:
                    return position
        return None

    def running(self) -> int:
        """Trainings holding a slot now."""
        with self._lock:
            return len(self._running)

    def worker_info(self) -> list[dict]:
        """Each live worker's process id, JAX device count, OS niceness and whether it runs under
        ``SCHED_IDLE``."""
        with self._lock:
            workers = [w for w in self._workers if not w.dead]
        return [self._wait(w.request((self._request_id(), 0, "info", "", (), {}))) for w in workers]

    def wait_ready(self, timeout: float = 60.0, warmed: bool = False) -> bool:
        """Waits until every worker has started and imported explorer (and, with ``warmed``, finished its
        warm-up); True if they all have."""
        deadline = time.monotonic() + timeout
        for worker in list(self._workers):
            event = worker.warmed if warmed and self._warm_up is not None else worker.ready
            if not event.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def warm_up_reports(self) -> list[tuple[float, str | None] | None]:
        """Per live worker: (seconds its warm-up took, error or None), or None while it runs."""
        with self._lock:
            return [w.warm_up_report for w in self._workers if not w.dead]

    def shutdown(self) -> None:
        """Stops every training and worker (the workers' trainings finish their chunk first)."""
        self._closed.set()
        with self._lock:
            workers, self._workers = self._workers, []
            self._queue.clear()
        for worker in workers:
            with worker.lock:
                if not worker.dead:
                    try:
                        worker.conn.send(None)
                    except OSError:
                        pass
        for worker in workers:
            worker.process.join(timeout=15)
            if worker.process.is_alive():
                worker.process.kill()

    # ----------------------------------------------------------------------------------------------
    # Used by RemoteTrainer

    def _call(self, trainer_id: int, op: str, name: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        with self._lock:
            entry = self._entries.get(trainer_id)
            if entry is None:
                raise TrainingLost("This training was closed.")
            if name in self.starting_methods and op == "call":
                if trainer_id in self._running or any(q[0] == trainer_id for q in self._queue):
                    return False  # already training or waiting: one training per trainer
                if len(self._running) >= self.max_trainings:
                    self._queue.append((trainer_id, name, args, kwargs))
                    return True
                self._running.add(trainer_id)
                op = "start"
            elif name in LEAVING_METHODS:
                self._unqueue({trainer_id})
        try:
            return self._wait(entry.worker.request((self._request_id(), trainer_id, op, name, args, kwargs)))
        except BaseException:
            if op == "start":  # no watcher was started: give the slot back
                self._ended(trainer_id)
            raise

    def _unqueue(self, trainer_ids: set[int]) -> None:
        """Drops these trainers' waiting starts (the caller holds the lock)."""
        self._queue = deque(q for q in self._queue if q[0] not in trainer_ids)

    def _close(self, trainer_id: int) -> None:
        with self._lock:
            entry = self._entries.pop(trainer_id, None)
            self._unqueue({trainer_id})
            if entry is None:
                return
            entry.worker.trainers.discard(trainer_id)
        try:
            entry.worker.request((self._request_id(), trainer_id, "close", "", (), {}))  # no need to wait
        except TrainingLost:
            pass
        self._ended(trainer_id)

    # ----------------------------------------------------------------------------------------------
    # Internals

    _request_ids = itertools.count(1)

    def _request_id(self) -> int:
        return next(self._request_ids)

    @staticmethod
    def _wait(reply: Reply) -> Any:
        reply.done.wait()
        if not reply.ok:
            raise reply.value
        return reply.value

    def _spawn(self) -> Worker:
        return Worker(self, self._context, self._settings)

    def _watch(self, entry: _Entry, proxy: RemoteTrainer) -> None:
        """Makes ``proxy`` the entry's newest (the caller holds the lock). A session that drops its proxy
        without closing it must not keep a trainer in the worker for ever. The garbage collector may run
        the note in any thread, even one holding a lock of ours: only a note there, the monitor acts."""
        entry.proxy_serial = next(self._serials)
        weakref.finalize(proxy, self._dropped.append, (entry.trainer_id, entry.proxy_serial)).atexit = False

    @staticmethod
    def _is_alive(entry: _Entry) -> bool:
        """Whether the entry's session is connected (True without a check: nothing disconnects then)."""
        if entry.alive is None:
            return True
        try:
            return bool(entry.alive())
        except Exception:  # noqa: BLE001 - a broken check must not end someone's training
            return True

    def _ended(self, *trainer_ids: int) -> None:
        """Trainings ended (or never started): free their slots and start the next queued ones."""
        with self._lock:
            self._running.difference_update(trainer_ids)
            starts = []
            while self._queue and len(self._running) < self.max_trainings:
                queued = self._queue.popleft()
                entry = self._entries.get(queued[0])
                if entry is None or entry.worker.dead:
                    continue
                self._running.add(queued[0])
                starts.append((entry.worker, queued))
        for worker, (queued_id, name, args, kwargs) in starts:
            # Not waited for: the training's own "ended" message gives the slot back.
            try:
                worker.request((self._request_id(), queued_id, "start", name, args, kwargs))
            except TrainingLost:
                self._ended(queued_id)

    def _worker_died(self, worker: Worker, message: str) -> None:
        with self._lock:
            lost = [self._entries.pop(t) for t in list(worker.trainers) if t in self._entries]
            worker.trainers.clear()
            gone = {entry.trainer_id for entry in lost}
            self._unqueue(gone)
            if worker in self._workers and not self._closed.is_set():
                self._workers[self._workers.index(worker)] = self._spawn()
        self._ended(*(entry.trainer_id for entry in lost))  # slots first: a proxy reporting FAILED has none
        for entry in lost:
            proxy = entry.proxy()
            if proxy is not None:
                proxy._lost = message

    def _monitor(self) -> None:
        """Closes trainers whose session is gone: a running one after ``abandon_after`` seconds, one that is
        not running after ``keep_paused`` (a reload may attach to it meanwhile), and at once one whose proxy
        was collected when no session can come back for it (no ``alive`` check: not a web server)."""
        while not self._closed.wait(self.check_every):
            while self._dropped:
                trainer_id, serial = self._dropped.popleft()
                with self._lock:
                    entry = self._entries.get(trainer_id)
                    if entry is None or entry.proxy_serial != serial:
                        continue  # a newer proxy (an attached session) holds it
                    entry.proxy_dropped = True
                if entry.alive is None:
                    self._close(trainer_id)
            now = time.monotonic()
            with self._lock:
                entries = list(self._entries.values())
            for entry in entries:
                if entry.alive is None and not entry.proxy_dropped:
                    continue
                if not entry.proxy_dropped and self._is_alive(entry):
                    entry.gone_since = None
                    continue
                entry.gone_since = entry.gone_since or now
                with self._lock:
                    training = entry.trainer_id in self._running or any(q[0] == entry.trainer_id for q in self._queue)
                if now - entry.gone_since >= (self.abandon_after if training else self.keep_paused):
                    proxy = entry.proxy()
                    if proxy is not None:
                        proxy._closed_message = "Training stopped: the browser session that started it went away."
                    self._close(entry.trainer_id)
