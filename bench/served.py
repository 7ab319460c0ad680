"""Run `deploy/serve.py` (what `make serve` runs) as a subprocess on free loopback ports, and look inside it:
which replica a browser is pinned to, each replica's process, everything the launcher started.

Shared by the serving test (tests/deploy/test_serve.py) and the load benchmark (bench/bench_serve.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from deploy.serve import COOKIE, descendants, haproxy_servers, port_free, supervisor_rpc

ROOT = Path(__file__).resolve().parent.parent


def free_port_block(count: int) -> int:
    """A port P with P … P+count-1 all free on every address (HAProxy, then the replicas)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        if all(port_free(port, "0.0.0.0") for port in range(base, base + count)):
            return base
    raise RuntimeError("no block of free ports found")


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (with the pid, names one process even if the pid is reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 if it is gone)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Served:
    """``deploy/serve.py --replicas N --port P`` on free ports, as a context manager; ``stop()`` sends it
    SIGTERM, as `make serve` passes on Ctrl-C."""

    def __init__(self, run_dir: Path, replicas: int = 2, max_trainings: int = 1, env: dict[str, str] | None = None):
        self.replicas = replicas
        self.port = free_port_block(replicas + 1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.run_dir = Path(run_dir)
        self._args = ["--replicas", str(replicas), "--port", str(self.port), "--max-trainings", str(max_trainings)]
        self._env = env or {}
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []
        self.seen: set[tuple[int, int | None]] = set()  # (pid, start time) of every process seen below it

    @property
    def replica_ports(self) -> list[int]:
        return list(range(self.port + 1, self.port + 1 + self.replicas))

    @property
    def ports(self) -> list[int]:
        return [self.port, *self.replica_ports]

    def start(self, timeout: float = 300.0) -> Served:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy" / "serve.py"), *self._args, "--run-dir", str(self.run_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self._env},
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not any(line.startswith("Serving at") for line in self.output):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("deploy/serve.py did not start:\n" + self.log())
            time.sleep(0.2)
        self.note_processes()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))

    def log(self) -> str:
        text = "\n".join(self.output)
        for name in ("supervisord.log", "haproxy.log", *(f"replica-{p}.log" for p in self.replica_ports)):
            with contextlib.suppress(OSError):
                text += f"\n--- {name}\n" + (self.run_dir / name).read_text(errors="replace")[-3000:]
        return text

    def note_processes(self) -> set[tuple[int, int | None]]:
        """Remembers every process now running below the launcher (replicas, their training workers,
        HAProxy, supervisord); returns them."""
        now = {(pid, start_time(pid)) for pid in descendants(self.process.pid)}
        self.seen |= now
        return now

    def still_running(self) -> list[int]:
        """Processes seen below the launcher that still exist (the same process, not a reused pid)."""
        return [pid for pid, started in self.seen if started is not None and start_time(pid) == started]

    def replica_pid(self, port: int) -> int:
        """The running process of the replica on ``port`` (0 while it is down or restarting)."""
        info = supervisor_rpc(self.run_dir).getProcessInfo(f"replica:replica-{port}")
        return info["pid"] if info["statename"] == "RUNNING" else 0

    def proxy_status(self) -> dict[str, str]:
        """Each replica's state as HAProxy sees it, by its cookie value (``r<port>``)."""
        return haproxy_servers(self.run_dir)

    @staticmethod
    def replica_of(context) -> str | None:
        """The replica a browser context is pinned to: the value of HAProxy's cookie (``r<port>``)."""
        return next((c["value"] for c in context.cookies() if c["name"] == COOKIE), None)

    def stop(self, timeout: float = 120.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:  # a broken launcher: leave nothing behind all the same
                for pid in [self.process.pid, *self.still_running()]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
