"""The server's side of one training worker process (``explorer.training.workers``): starting it without the
app's ``__main__``, its pipe, and the replies it owes; ``worker_process`` is the worker's side.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

from explorer.training.remote_trainer import TrainingLost
from explorer.training.worker_process import serve

# "spawn" re-runs the parent's ``__main__`` in the child before anything else. Under ``streamlit run`` that
# module is the app script itself (Streamlit runs every script as ``__main__``), so a worker would run the
# app in bare mode: pages, model loading, even another pool. A worker needs nothing from ``__main__``.
_BARE_MAIN = types.ModuleType("__main__")  # no __file__, no __spec__: spawn leaves main alone
_MAIN_LOCK = threading.Lock()


def _start_without_main(process: Any) -> None:
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = _BARE_MAIN
        try:
            process.start()
        finally:
            if sys.modules.get("__main__") is _BARE_MAIN:  # unless a script run has set its own meanwhile
                sys.modules["__main__"] = main


class Reply:
    """What a request to a worker is answered with, once ``done`` is set: ``value``, or the error it raised."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


class Worker:
    """One worker process, its pipe, and the replies it owes. It tells ``pool`` when a training ends
    (``pool._ended``) and when the process dies (``pool._worker_died``)."""

    def __init__(self, pool: Any, context: Any, settings: tuple):
        self.pool = pool
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, *settings), name="explorer-training", daemon=True)
        _start_without_main(self.process)
        child.close()  # only the worker holds its end, so the pipe closes when the worker dies
        self.lock = threading.Lock()
        self.replies: dict[int, Reply] = {}
        self.ready = threading.Event()
        self.warmed = threading.Event()
        self.warm_up_report: tuple[float, str | None] | None = None  # (seconds, error or None)
        self.dead = False
        self.trainers: set[int] = set()
        threading.Thread(target=self._read, name="explorer-training-reader", daemon=True).start()

    def request(self, message: tuple) -> Reply:
        reply = Reply()
        with self.lock:
            if self.dead:
                raise TrainingLost("The training process has stopped.")
            self.replies[message[0]] = reply
            try:
                self.conn.send(message)
            except OSError as error:  # the worker died; the reader thread reports it
                self.replies.pop(message[0], None)
                raise TrainingLost("The training process has stopped.") from error
        return reply

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "reply":
                _, request_id, ok, value = message
                with self.lock:
                    reply = self.replies.pop(request_id, None)
                if reply is not None:
                    reply.ok, reply.value = ok, value
                    reply.done.set()
            elif kind == "ended":
                self.pool._ended(message[1])
            elif kind == "ready":
                self.ready.set()
            elif kind == "warm":
                self.warm_up_report = message[1:]
                self.warmed.set()
        with self.lock:
            self.dead = True
            pending, self.replies = list(self.replies.values()), {}
        self.process.join(timeout=5)
        lost = TrainingLost(f"The training process stopped unexpectedly (exit code {self.process.exitcode}).")
        self.pool._worker_died(self, str(lost))  # before the callers hear of it: their slots are free then
        for reply in pending:
            reply.ok, reply.value = False, lost
            reply.done.set()
