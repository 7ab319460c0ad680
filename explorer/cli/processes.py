"""The processes of a training that spans several of them: starting them, watching them, explaining their end.

``python -m explorer train`` with ``--coordinator``/``--num-processes``/``--process-id`` (one process per host,
started by hand) or ``--processes N`` (N processes on this machine, on a free loopback port) does not train
in the process the user started. That process supervises a worker (``--processes N``: N workers) running
the same command, because JAX ends a process whose run lost a peer by aborting it with a C++ stack trace:
the supervisor, which outlives it, says in one line what happened. A worker

* sends the C++ output of JAX and gloo to a log file (gloo announces its connections on stdout, which
  would corrupt ``--json``; a fatal error prints a stack trace) and keeps Python's own streams;
* notes in that log when it has joined the run, so an abrupt end reads as "could not join" or as "lost
  another process";
* ends at once after any failure (``os._exit``): a clean exit would wait at JAX's shutdown barrier for
  peers that may be gone.

The supervisor deletes a worker's log unless it failed (then its one line names it). With ``--processes``, when
one worker fails the others are stopped, and the exit status is process 0's (or the failure's, when
process 0 had to be stopped). Exit statuses: 0 done, 1 training blew up, 2 a clear failure (bad flags, a
process that could not join, a lost peer), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from explorer import available_cores
from explorer.training.distributed import Cluster

EXIT_DIVERGED = 1  # training blew up: the run ended together, process 0 saved the last finite parameters
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130
EXIT_STOPPED = 143  # a worker stopped by its supervisor (128 + SIGTERM)
JOINED_MARK = "explorer: joined the run"  # written to a worker's log once every process has connected
STOP_GRACE_SECONDS = 5.0  # a stopped worker's time to end by itself before it is killed
POLL_SECONDS = 0.2


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def devices_per_process(processes: int) -> int:
    """CPU devices each of ``processes`` local processes gets: ``EXPLORER_CPU_DEVICES`` if set, else an equal
    share of this machine's cores (at least one)."""
    wanted = os.environ.get("EXPLORER_CPU_DEVICES", "").strip()
    if wanted.isdigit() and int(wanted) >= 1:
        return int(wanted)
    return max(1, available_cores() // processes)


# --------------------------------------------------------------------------------------------------
# The supervisor's side


class _Worker:
    def __init__(self, argv: list[str], cluster: Cluster, env: dict[str, str]):
        self.cluster = cluster
        handle, log = tempfile.mkstemp(prefix=f"explorer-train-process-{cluster.process_id}-", suffix=".log")
        os.close(handle)
        self.log = Path(log)
        command = [sys.executable, "-m", "explorer", *argv, *self.flags(cluster, self.log)]
        self.process = subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)
        self.stopped_at: float | None = None  # when the supervisor stopped it, because another worker failed

    @staticmethod
    def flags(cluster: Cluster, log: Path | str) -> list[str]:
        """What the supervisor adds to the user's command to make a worker (always as many items)."""
        return [
            "--coordinator",
            cluster.coordinator,
            "--num-processes",
            str(cluster.num_processes),
            "--process-id",
            str(cluster.process_id),
            "--init-timeout",
            str(cluster.init_timeout),
            "--heartbeat-timeout",
            str(cluster.heartbeat_timeout),
            "--native-log",
            str(log),
        ]

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def stop(self) -> None:
        if self.process.poll() is None and self.stopped_at is None:
            self.stopped_at = time.monotonic()
            self.process.terminate()

    def kill_if_slow(self) -> None:
        """A stopped worker still running after ``STOP_GRACE_SECONDS`` is killed (one blocked in a collective
        cannot run its signal handler until the collective returns)."""
        if self.stopped_at is not None and time.monotonic() - self.stopped_at > STOP_GRACE_SECONDS:
            if self.process.poll() is None:
                self.process.kill()

    def explain(self) -> str | None:
        """One line for an abrupt end (a worker that exits with a status has said why itself), or None."""
        code = self.process.returncode
        if code is None or code >= 0 or self.stopped:
            return None
        label, cluster = self.cluster.label, self.cluster
        log = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        fatal = re.search(r"absl::Status: (.*)", log)  # JAX's fatal error names the failed status
        if fatal is None:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"error: {label} was ended by {name} (log: {self.log})"
        detail = _status_text(log, fatal.start(1))
        if JOINED_MARK not in log:
            what = (
                f"not every process joined the run at {cluster.coordinator}"
                if cluster.process_id == 0
                else f"could not join the run at {cluster.coordinator}"
            )
            return (
                f"error: {label}: {what} within {cluster.init_timeout} s: start all {cluster.num_processes} "
                f"processes with the same --coordinator and --num-processes, and check that every host reaches "
                f"process 0 ({detail}; log: {self.log})"
            )
        return (
            f"error: {label} stopped: another process of the run died or stopped answering ({detail}; log: {self.log})"
        )

    def status(self) -> int:
        """The worker's exit status, an abrupt end counting as a clear failure."""
        code = self.process.returncode
        return EXIT_FAILED if code is not None and code < 0 and not self.stopped else code


WORKER_FLAGS = len(_Worker.flags(Cluster("host:1", 1, 0), "log"))  # items the supervisor appends to a command


def _status_text(log: str, start: int, limit: int = 140) -> str:
    """The status of JAX's fatal error from ``start`` on: its lines up to the first blank one, joined and cut."""
    lines = []
    for line in log[start:].splitlines():
        if not line.strip() or line.startswith(("RPC:", "***")):
            break
        lines.append(line.strip())
    text = " ".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _die_with_parent() -> None:
    """In the worker, before it runs: the kernel kills it if its supervisor dies (Linux's PDEATHSIG), so a
    killed supervisor leaves no worker training on alone."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def supervise(argv: list[str], clusters: list[Cluster], env: dict[str, str] | None = None) -> int:
    """Runs one worker per cluster entry (``argv``: the ``train`` command without its process flags) and
    waits for all of them; the first to fail stops the others. Returns the exit status of the worker of
    process 0 (when several run here and it had to be stopped, the failure's)."""
    env = dict(os.environ if env is None else env)
    workers = [_Worker(argv, cluster, env) for cluster in clusters]
    failed: _Worker | None = None
    try:
        while [w.process.poll() for w in workers].count(None):  # polls every worker (any() would stop early)
            for worker in workers:
                if failed is None and worker.process.returncode not in (None, 0, EXIT_DIVERGED) and not worker.stopped:
                    failed = worker
                    _report(worker)
                    for other in workers:
                        other.stop()
            time.sleep(POLL_SECONDS)
            for worker in workers:
                worker.kill_if_slow()
    except KeyboardInterrupt:
        for worker in workers:
            worker.stop()
        _wait_or_kill(workers)
        return EXIT_INTERRUPTED
    for worker in workers:
        if failed is None and worker.process.returncode not in (0, EXIT_DIVERGED):
            failed = worker
            _report(worker)
    for worker in workers:
        if worker.process.returncode == 0 or worker.stopped:  # kept: the logs of failures, named above
            worker.log.unlink(missing_ok=True)
    first = workers[0]
    if first.stopped and failed is not None:
        return failed.status()
    return first.status()


def _report(worker: _Worker) -> None:
    line = worker.explain()
    if line is not None:
        print(line, file=sys.stderr, flush=True)


def _wait_or_kill(workers: list[_Worker]) -> None:
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in workers:
        try:
            worker.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def launch(args: argparse.Namespace, check: Callable[[int], None]) -> int:
    """The supervisor's entry: ``--processes N`` starts N workers here on a free loopback port; the flags of
    one process of a run over several hosts start one. ``check(devices)`` validates the flags (before
    anything starts) for a run over ``devices`` devices (None: not known here, other hosts add theirs)."""
    argv = list(args.argv)
    timeouts = {"init_timeout": args.init_timeout, "heartbeat_timeout": args.heartbeat_timeout}
    if args.processes is not None:
        if args.coordinator or args.num_processes is not None or args.process_id is not None:
            raise ValueError(
                "Give either --processes N (processes on this machine) or --coordinator, --num-processes and "
                "--process-id (one process per host), not both."
            )
        if args.processes < 1:
            raise ValueError(f"--processes must be at least 1, got {args.processes}.")
        per_process = devices_per_process(args.processes)
        check(args.processes * per_process)
        coordinator = f"127.0.0.1:{free_loopback_port()}"
        clusters = [Cluster(coordinator, args.processes, i, **timeouts) for i in range(args.processes)]
        env = {**os.environ, "EXPLORER_CPU_DEVICES": str(per_process)}
        return supervise(argv, clusters, env)
    if not args.coordinator or args.num_processes is None or args.process_id is None:
        raise ValueError(
            "A process of a run over several hosts needs --coordinator HOST:PORT (process 0's address), "
            "--num-processes and --process-id."
        )
    cluster = Cluster(args.coordinator, args.num_processes, args.process_id, **timeouts)
    check(None)
    return supervise(argv, [cluster])


# --------------------------------------------------------------------------------------------------
# The worker's side


class _Stopped(BaseException):
    """Raised in a worker by SIGTERM: its supervisor stops it because another process failed."""


def _on_sigterm(signum, frame):
    raise _Stopped


def _divert_native_output(log: str) -> None:
    """Points the process's stdout and stderr file descriptors (where JAX's C++ code and gloo write) at the
    log file, and Python's ``sys.stdout``/``sys.stderr`` at the original streams."""
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = os.dup(1), os.dup(2)
    handle = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    sys.stdout = os.fdopen(out, "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stderr = os.fdopen(err, "w", buffering=1, encoding="utf-8", errors="replace")


def _end(code: int, line: str | None = None) -> None:
    """Ends the worker now: no shutdown barrier, no waiting for peers that may be gone."""
    if line:
        print(line, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_worker(args: argparse.Namespace, train: Callable[[Cluster], int]) -> int:
    """A worker: joins the run, calls ``train(cluster)`` (which returns an exit status), then waits for the
    others to finish. Any failure ends it at once, with one line."""
    from explorer.training import distributed

    cluster = Cluster(args.coordinator, args.num_processes, args.process_id, args.init_timeout, args.heartbeat_timeout)
    _divert_native_output(args.native_log)
    signal.signal(signal.SIGTERM, _on_sigterm)
    label = cluster.label
    try:
        if cluster.process_id == 0 and cluster.num_processes > 1:
            others = cluster.num_processes - 1
            print(
                f"{label}: waiting for {others} more process{'es' * (others > 1)} at {cluster.coordinator} "
                f"(up to {cluster.init_timeout} s)",
                file=sys.stderr,
            )
        try:
            distributed.join(cluster)
        except Exception as error:  # noqa: BLE001 - e.g. the coordinator's port is taken
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            hint = " (is the port in use?)" if "RPC server" in first else ""
            _end(EXIT_FAILED, f"error: {label} could not join the run at {cluster.coordinator}{hint}: {first}")
        with open(args.native_log, "a", encoding="utf-8") as log:
            log.write(f"\n{JOINED_MARK}\n")
        if cluster.process_id == 0 and cluster.num_processes > 1:
            import jax

            print(
                f"{label}: all {cluster.num_processes} processes joined ({len(jax.devices())} devices)", file=sys.stderr
            )
        code = train(cluster)
    except _Stopped:
        _end(EXIT_STOPPED)
    except KeyboardInterrupt:
        _end(EXIT_INTERRUPTED, "error: interrupted")
    except SystemExit as exit_:
        _end(exit_.code if isinstance(exit_.code, int) else EXIT_FAILED)
    except BaseException as error:  # noqa: BLE001 - one line, never a traceback
        _end(EXIT_FAILED, f"error: {label}: {error}")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        distributed.leave()
    except Exception:  # noqa: BLE001 - the run's result stands; a peer that left early changes nothing
        pass
    return code
