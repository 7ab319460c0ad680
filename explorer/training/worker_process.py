"""The training worker process's side of ``explorer.training.workers``: its main loop, which hosts Trainers and
answers the server's requests over a pipe, and its warm-up.

A worker runs every request in its own thread, so a long call (building a trainer, a compile) never
holds up another session's status poll, and reports each started training's end so its slot is freed.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any

from explorer.training.status import RUNNING

WATCH_SECONDS = 0.1  # how often a worker checks whether a started training has ended


class Method:
    """Sent instead of an attribute's value when the attribute is a method."""


def _warm_up(trainer_class: type, args: tuple) -> None:
    """Builds ``trainer_class(*args)`` and compiles it (``Trainer.compile`` also runs one real step: a first
    execution has costs of its own). The compiled programs stay in this process (``compile_functions`` is
    cached per configs), so a user playing that setup skips both."""
    trainer_class(*args).compile()


def serve(conn: Any, nice: int, idle: bool, cache_dir: str | None, warm_up: tuple | None) -> None:
    """A worker's main loop: runs every request in its own thread (a long call, such as building a
    trainer, must not hold up another session's status poll), replies on the same pipe."""
    # Before any thread starts: threads inherit their creator's priority and scheduling policy.
    os.nice(nice)
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # not allowed here: the nice value alone lowers the priority
    import explorer  # noqa: F401 - configures JAX's CPU devices before anything runs
    from explorer.model.inference import enable_compilation_cache
    from explorer.training.runner import Trainer
    from explorer.training.snapshots import Snapshot

    enable_compilation_cache(cache_dir)
    trainers: dict[int, Trainer] = {}
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        try:
            with send_lock:
                conn.send(message)
        except OSError:
            pass  # the server is gone; the main loop sees the closed pipe and ends the process

    def reply(request_id: int, ok: bool, value: Any) -> None:
        try:
            with send_lock:  # pickling comes before writing: a failure leaves the pipe clean
                conn.send(("reply", request_id, ok, value))
        except OSError:
            pass  # the server is gone
        except Exception as error:  # noqa: BLE001 - an unpicklable result must become an error reply
            send(("reply", request_id, False, TypeError(f"the result can't be sent between processes: {error}")))

    def watch(trainer_id: int, trainer: Trainer) -> None:
        # Polls the public status, so it works whatever thread or pause mechanism the Trainer uses.
        while trainers.get(trainer_id) is trainer and trainer.status().state == RUNNING:
            time.sleep(WATCH_SECONDS)
        send(("ended", trainer_id))

    def handle(request_id: int, trainer_id: int, op: str, name: str, args: tuple, kwargs: dict) -> None:
        try:
            if op == "info":
                import jax

                value = {
                    "pid": os.getpid(),
                    "devices": jax.device_count(),
                    "niceness": os.nice(0),
                    "idle_policy": hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(0) == os.SCHED_IDLE,
                }
            elif op == "create":
                trainers[trainer_id] = Trainer(*args, **kwargs)
                value = None
            elif op == "close":
                trainer = trainers.pop(trainer_id, None)
                if trainer is not None:
                    trainer.stop()
                value = None
            else:
                trainer = trainers[trainer_id]
                value = getattr(trainer, name)
                if op == "getattr":
                    value = Method() if callable(value) else value
                else:
                    value = value(*args, **kwargs)
                    if isinstance(value, Snapshot):
                        # Its parameters stay here (~1 MB for the toy model: ~10 ms a poll over the pipe);
                        # what shows a snapshot needs its attention and embeddings, a model comes from bundle().
                        value = dataclasses.replace(value, params=None)
                    if op == "start":
                        threading.Thread(target=watch, args=(trainer_id, trainer), daemon=True).start()
        except Exception as error:  # noqa: BLE001 - the caller re-raises it
            reply(request_id, False, error)
        else:
            reply(request_id, True, value)

    send(("ready", os.getpid()))
    if warm_up is not None:

        def warm() -> None:
            started = time.perf_counter()
            try:
                _warm_up(Trainer, warm_up)
                send(("warm", time.perf_counter() - started, None))
            except Exception as error:  # noqa: BLE001 - a failed warm-up only costs the first start a compile
                send(("warm", time.perf_counter() - started, f"{type(error).__name__}: {error}"))

        threading.Thread(target=warm, name="explorer-warm-up", daemon=True).start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        threading.Thread(target=handle, args=message, daemon=True).start()
    for trainer in list(trainers.values()):
        trainer.stop(timeout=10)
    # Skips interpreter finalisation: a daemon thread still inside JAX when it runs aborts the process
    # ("FATAL: exception not rethrown"). The trainings have stopped and nothing else needs flushing.
    os._exit(0)
