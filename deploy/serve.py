"""Serve a class: app replicas supervised by supervisord, behind HAProxy with sticky sessions.

    .venv/bin/python deploy/serve.py [--replicas N] [--port P] [--bind ADDR] [--max-trainings M]
                                     [--backends HOST:PORT,...] [--no-proxy] [--run-dir DIR]

(``make serve REPLICAS=N PORT=P ...`` runs exactly this.) On one machine: N replicas of the app on
127.0.0.1:P+1 … P+N, each its own ``streamlit run`` with its own training workers, kept running by
supervisord (a replica that dies is started again), and HAProxy on BIND:P in front of them. With
``--backends``, HAProxy also sends browsers to replicas on other machines; with ``--no-proxy`` this
machine runs only replicas, on BIND:P+1 … P+N, for a proxy elsewhere.

The configuration comes from the two templates next to this file (``haproxy.cfg.template``,
``supervisord.conf.template``), written with the knobs filled in to the run directory, which also holds
every log. Ctrl-C or SIGTERM stops everything: supervisord stops the replicas (with their training
workers) and HAProxy; anything left of them afterwards is killed, and the ports are free when this exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
COOKIE = "EXPLORER_REPLICA"  # the sticky cookie HAProxy sets (see haproxy.cfg.template)
BACKEND = "replicas"  # HAProxy's backend name in the template
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Backend:
    """One replica HAProxy sends browsers to; ``name`` is also its sticky cookie's value."""

    name: str
    host: str
    port: int


@dataclass(frozen=True)
class ServeConfig:
    """The knobs a teacher changes. ``bind`` is the address the class connects to: HAProxy's, or with
    ``proxy=False`` the replicas' own."""

    replicas: int = 2
    port: int = 8500
    bind: str = "127.0.0.1"
    max_trainings: int | None = None  # per replica; None: cores / (2 x replicas), at least one
    backends: tuple[str, ...] = ()  # "host:port" of replicas on other machines
    proxy: bool = True
    run_dir: Path = Path(tempfile.gettempdir()) / "explorer-serve"

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValueError("--replicas must be 0 or more.")
        if not 1 <= self.port <= 65535 - max(self.replicas, 1):
            raise ValueError(f"--port {self.port} leaves no room for {self.replicas} replica ports after it.")
        if self.max_trainings is not None and self.max_trainings < 1:
            raise ValueError("--max-trainings must be 1 or more.")
        if not self.proxy and self.backends:
            raise ValueError("--backends needs the proxy (leave out --no-proxy).")
        if not self.replicas and not self.backends:
            raise ValueError("Nothing to serve: give --replicas 1 or more, or --backends.")
        if not self.proxy and not self.replicas:
            raise ValueError("--no-proxy with 0 replicas runs nothing.")
        for backend in self.backends:
            parse_backend(backend)

    @property
    def replica_ports(self) -> list[int]:
        return list(range(self.port + 1, self.port + 1 + self.replicas))

    @property
    def replica_address(self) -> str:
        """Behind a local proxy the replicas listen on loopback only; without one, where the class is."""
        return "127.0.0.1" if self.proxy else self.bind

    @property
    def trainings_per_replica(self) -> int:
        if self.max_trainings is not None:
            return self.max_trainings
        return max(1, (os.cpu_count() or 1) // (2 * max(self.replicas, 1)))

    @property
    def all_backends(self) -> list[Backend]:
        local = [Backend(f"r{port}", "127.0.0.1", port) for port in self.replica_ports] if self.proxy else []
        return local + [parse_backend(b) for b in self.backends]

    @property
    def listening_ports(self) -> list[int]:
        """Every port this machine's part of the service listens on."""
        return ([self.port] if self.proxy else []) + self.replica_ports


def parse_backend(text: str) -> Backend:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"A backend is HOST:PORT (e.g. 10.0.0.2:8501), not {text!r}.")
    host = host.strip("[]")  # [::1]:8501
    return Backend(re.sub(r"[^A-Za-z0-9]+", "-", f"{host}-{port}"), host, int(port))


def haproxy_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on an ordinary user's PATH.
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def _supervisor_value(value: object) -> str:
    return str(value).replace("%", "%%")  # supervisor expands %(name)s in its values


def render_haproxy(config: ServeConfig) -> str:
    servers = "\n".join(f"    server {b.name} {_address(b.host)}:{b.port} cookie {b.name}" for b in config.all_backends)
    template = string.Template((HERE / "haproxy.cfg.template").read_text())
    return template.substitute(run_dir=config.run_dir, bind=_address(config.bind), port=config.port, servers=servers)


def _address(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address in host:port form


def render_supervisord(config: ServeConfig, haproxy: str) -> str:
    values = {
        "run_dir": config.run_dir,
        "root": ROOT,
        "python": sys.executable,
        "haproxy": haproxy,
        "replicas": config.replicas,
        "first_port": config.port + 1,
        "replica_address": config.replica_address,
        "max_trainings": config.trainings_per_replica,
    }
    text = string.Template((HERE / "supervisord.conf.template").read_text()).substitute(
        {k: _supervisor_value(v) for k, v in values.items()}
    )
    drop = ([] if config.replicas else ["program:replica"]) + ([] if config.proxy else ["program:haproxy"])
    return _without_sections(text, drop)


def _without_sections(text: str, names: Iterable[str]) -> str:
    """The INI text without the sections named (each from its header to the next header)."""
    names, kept, skipping = set(names), [], False
    for line in text.splitlines(keepends=True):
        header = re.match(r"\[([^\]]+)\]", line)
        if header:
            skipping = header.group(1) in names
        if not skipping:
            kept.append(line)
    return "".join(kept)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def healthy(url: str, timeout: float = 2.0) -> bool:
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as response:
            return response.read().strip() == b"ok"
    return False


def haproxy_servers(run_dir: Path) -> dict[str, str]:
    """Each server's status as HAProxy sees it ("UP", "DOWN", "UP 1/2", ...), from its stats socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(run_dir / "haproxy.sock"))
        sock.sendall(b"show stat\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {
        r["svname"]: r["status"] for r in rows if r["pxname"] == BACKEND and r["svname"] not in ("BACKEND", "FRONTEND")
    }


def supervisor_rpc(run_dir: Path):
    """supervisord's XML-RPC interface (what supervisorctl talks to), over its unix socket: e.g.
    ``supervisor_rpc(d).getProcessInfo("replica:replica-8501")["pid"]``."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{run_dir / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and ")"
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), zombies left out."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        if table.get(p, (0, "Z"))[1] != "Z":
            found.append(p)
        todo.extend(children.get(p, []))
    return found


def _reap_orphans(keep: int | None) -> None:
    """Collects the exit status of the orphans this process adopted as subreaper (all but ``keep``)."""
    me = os.getpid()
    for pid, (parent, state) in _proc_table().items():
        if parent == me and state == "Z" and pid != keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _become_subreaper() -> bool:
    """Orphans of everything started from here (training workers of a killed replica) become this
    process's children instead of init's, so nothing escapes the final sweep. Linux only."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Service:
    """supervisord (and through it the replicas and HAProxy) for one ``ServeConfig``."""

    def __init__(self, config: ServeConfig, log=print):
        self.config = config
        self.log = log
        self.supervisord: subprocess.Popen | None = None

    def prepare(self) -> None:
        """Checks what is needed, then writes the configuration to the run directory."""
        config = self.config
        haproxy = haproxy_binary()
        if config.proxy and haproxy is None:
            raise RuntimeError("HAProxy is not installed: `make serve` installs it as root (apt-get install haproxy).")
        busy = [p for p in config.listening_ports if not port_free(p, "0.0.0.0")]
        if busy:
            raise RuntimeError(f"Port(s) {', '.join(map(str, busy))} already in use: choose another --port.")
        config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in ("supervisor.sock", "haproxy.sock", "supervisord.pid"):
            with contextlib.suppress(FileNotFoundError):
                (config.run_dir / stale).unlink()
        (config.run_dir / "supervisord.conf").write_text(render_supervisord(config, haproxy or "haproxy"))
        if config.proxy:
            (config.run_dir / "haproxy.cfg").write_text(render_haproxy(config))
            check = subprocess.run(
                [haproxy, "-c", "-q", "-f", str(config.run_dir / "haproxy.cfg")], capture_output=True
            )
            if check.returncode:
                raise RuntimeError(f"HAProxy rejects the configuration:\n{check.stderr.decode(errors='replace')}")

    def start(self) -> None:
        _become_subreaper()
        env = dict(os.environ)
        # Every replica signs cookies with the same secret, so a browser moved to another replica (one
        # died) keeps working there. Set it yourself to share it with replicas on other machines.
        env.setdefault("STREAMLIT_SERVER_COOKIE_SECRET", secrets.token_hex(32))
        self.supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config.run_dir / "supervisord.conf")],
            cwd=ROOT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches this launcher only; it stops supervisord in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, no locks taken
            stdin=subprocess.DEVNULL,
        )

    def ready(self) -> bool:
        """Every local replica answers its health check and HAProxy sees every backend up."""
        if not all(healthy(f"http://127.0.0.1:{p}") for p in self.config.replica_ports):
            return False
        if not self.config.proxy:
            return True
        with contextlib.suppress(OSError, IndexError, KeyError):
            status = haproxy_servers(self.config.run_dir)
            return bool(status) and all(s.startswith("UP") and "/" not in s for s in status.values())
        return False

    def wait_ready(self, timeout: float, stop: threading.Event | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            if not self.running():
                raise RuntimeError(f"supervisord exited; see {self.config.run_dir / 'supervisord.log'}")
            if self.ready():
                return True
            _reap_orphans(self.supervisord.pid)
            time.sleep(0.25)
        return False

    def running(self) -> bool:
        return self.supervisord is not None and self.supervisord.poll() is None

    def stop(self, timeout: float = 45.0) -> list[int]:
        """Stops supervisord (which stops HAProxy, then the replicas and their workers), kills whatever of
        them is left, and waits for the ports to be free. Returns the ports still busy (none, normally)."""
        me = os.getpid()
        if self.running():
            self.supervisord.send_signal(signal.SIGTERM)
            try:
                self.supervisord.wait(timeout)
            except subprocess.TimeoutExpired:
                self.supervisord.kill()
                self.supervisord.wait()
        # A replica killed mid-restart, a worker still compiling when its server went: stragglers were
        # adopted by this process (subreaper) and end here, politely first.
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            left = descendants(me)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                _reap_orphans(None)
                left = descendants(me)
            if not left:
                break
        _reap_orphans(None)
        deadline = time.monotonic() + 10
        busy = self.config.listening_ports
        while busy and time.monotonic() < deadline:
            busy = [p for p in busy if not port_free(p, "0.0.0.0")]
            if busy:
                time.sleep(0.2)
        return busy


def parse_args(argv: list[str] | None = None) -> tuple[ServeConfig, float]:
    """The configuration, and how long to wait for every replica to be up before saying so."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2, help="app replicas on this machine (default 2)")
    parser.add_argument("--port", type=int, default=8500, help="HAProxy's port; replicas use the next ones")
    parser.add_argument("--bind", default="127.0.0.1", help="address the class connects to (0.0.0.0: all)")
    parser.add_argument(
        "--max-trainings", type=int, help="trainings at once per replica (default: cores / (2 x replicas))"
    )
    parser.add_argument("--backends", default="", help="replicas on other machines: HOST:PORT,HOST:PORT,...")
    parser.add_argument("--no-proxy", action="store_true", help="replicas only, on --bind (for a proxy elsewhere)")
    parser.add_argument("--run-dir", type=Path, help="configuration and logs (default: a temp dir per port)")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    try:
        config = ServeConfig(
            replicas=args.replicas,
            port=args.port,
            bind=args.bind,
            max_trainings=args.max_trainings,
            backends=tuple(b for b in args.backends.replace(" ", ",").split(",") if b),
            proxy=not args.no_proxy,
            run_dir=(args.run_dir or Path(tempfile.gettempdir()) / f"explorer-serve-{args.port}").resolve(),
        )
    except ValueError as error:
        parser.error(str(error))
    return config, args.ready_timeout


def main(argv: list[str] | None = None) -> int:
    config, ready_timeout = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    service = Service(config)
    try:
        service.prepare()
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    service.start()
    where = f"http://{config.bind}:{config.port}" if config.proxy else f"{config.bind}:{config.replica_ports}"
    print(f"Starting {config.replicas} replica(s) under supervisord; configuration and logs in {config.run_dir}")
    status = 0
    try:
        if service.wait_ready(ready_timeout, stop):
            print(f"Serving at {where} (Ctrl-C stops everything).", flush=True)
        elif not stop.is_set():
            print(f"Not every replica is up after {ready_timeout:.0f} s: serving anyway; see the logs.", flush=True)
        while not stop.wait(1.0):
            if not service.running():
                print(f"supervisord exited; see {config.run_dir / 'supervisord.log'}", file=sys.stderr)
                status = 1
                break
            _reap_orphans(service.supervisord.pid)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        status = 1
    finally:
        print("Stopping ...", flush=True)
        busy = service.stop()
        if busy:
            print(f"Port(s) {', '.join(map(str, busy))} still in use after stopping.", file=sys.stderr)
            status = 1
        else:
            print("Stopped; ports " + ", ".join(map(str, config.listening_ports)) + " are free.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
