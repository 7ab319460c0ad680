"""The configuration `make serve` writes, read back by the tools themselves: supervisord's own config loader
and `haproxy -c`, for the knobs a teacher changes (replicas, port, bind address, trainings per replica,
backends on other machines, a replicas-only machine)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from deploy.serve import (
    ROOT,
    ServeConfig,
    haproxy_binary,
    parse_args,
    parse_backend,
    render_haproxy,
    render_supervisord,
)


def programs(config: ServeConfig) -> dict[str, object]:
    """supervisord's view of the configuration: process name -> its parsed config."""
    from supervisor.options import ServerOptions

    path = config.run_dir / "supervisord.conf"
    path.write_text(render_supervisord(config, "/usr/sbin/haproxy"))
    options = ServerOptions()
    options.realize(["-c", str(path)])
    return {p.name: p for group in options.process_group_configs for p in group.process_configs}


def haproxy_check(config: ServeConfig) -> str:
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed (`make test` installs it)")
    path = config.run_dir / "haproxy.cfg"
    path.write_text(render_haproxy(config))
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return path.read_text()


def test_one_process_per_replica_on_consecutive_ports_and_haproxy(tmp_path):
    config = ServeConfig(replicas=3, port=9000, max_trainings=2, run_dir=tmp_path)
    found = programs(config)
    assert sorted(found) == ["haproxy", "replica-9001", "replica-9002", "replica-9003"]
    for port in (9001, 9002, 9003):
        replica = found[f"replica-{port}"]
        command = replica.command.split()
        assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
        assert command[command.index("--server.port") + 1] == str(port)
        assert command[command.index("--server.address") + 1] == "127.0.0.1"  # behind the proxy: loopback
        assert replica.directory == str(ROOT)
        assert replica.environment == {"EXPLORER_MAX_TRAININGS": "2"}
        assert replica.autorestart is not False and replica.stopasgroup and replica.killasgroup
    assert found["haproxy"].command.split()[:2] == ["/usr/sbin/haproxy", "-db"]


def test_haproxy_configuration_is_valid_and_sticky_with_every_backend(tmp_path):
    config = ServeConfig(
        replicas=2, port=9100, bind="0.0.0.0", backends=("10.0.0.3:8501", "[fd00::3]:8502"), run_dir=tmp_path
    )
    text = haproxy_check(config)
    assert re.search(r"^\s+bind 0\.0\.0\.0:9100$", text, re.M)
    servers = re.findall(r"^\s+server (\S+) (\S+) cookie (\S+)$", text, re.M)
    assert [(address, name == cookie) for name, address, cookie in servers] == [
        ("127.0.0.1:9101", True),
        ("127.0.0.1:9102", True),
        ("10.0.0.3:8501", True),
        ("[fd00::3]:8502", True),
    ]
    assert len({name for name, _, _ in servers}) == 4  # each replica its own cookie value
    for line in ("cookie EXPLORER_REPLICA insert indirect nocache", "option redispatch", "timeout tunnel 1h"):
        assert line in text
    assert "uri /_stcore/health" in text


def test_a_replicas_only_machine_listens_where_the_class_is_and_runs_no_proxy(tmp_path):
    config = ServeConfig(replicas=2, port=8500, bind="10.0.0.3", proxy=False, run_dir=tmp_path)
    found = programs(config)
    assert sorted(found) == ["replica-8501", "replica-8502"]
    command = found["replica-8501"].command.split()
    assert command[command.index("--server.address") + 1] == "10.0.0.3"
    assert config.listening_ports == [8501, 8502]


def test_a_proxy_only_machine_runs_no_replica(tmp_path):
    config = ServeConfig(replicas=0, port=8500, backends=("10.0.0.3:8501",), run_dir=tmp_path)
    assert sorted(programs(config)) == ["haproxy"]
    servers = re.findall(r"^\s+server \S+ (\S+)", haproxy_check(config), re.M)
    assert servers == ["10.0.0.3:8501"]


def test_trainings_per_replica_default_shares_half_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert ServeConfig(replicas=2, run_dir=tmp_path).trainings_per_replica == 4
    assert ServeConfig(replicas=16, run_dir=tmp_path).trainings_per_replica == 1
    assert ServeConfig(replicas=2, max_trainings=3, run_dir=tmp_path).trainings_per_replica == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--replicas", "-1"], "0 or more"),
        (["--replicas", "0"], "Nothing to serve"),
        (["--no-proxy", "--backends", "h:1"], "needs the proxy"),
        (["--backends", "nohost"], "HOST:PORT"),
        (["--backends", "h:99999"], "HOST:PORT"),
        (["--max-trainings", "0"], "1 or more"),
        (["--port", "65535"], "no room"),
    ],
)
def test_bad_knobs_get_a_clear_message(args, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(args)
    assert message in capsys.readouterr().err


def make_serve(*knobs: str) -> list[str]:
    """The launcher command `make serve` would run (make -n; a clean environment, not the caller's make's)."""
    run = subprocess.run(
        ["make", "-n", "-o", "install", "-o", "haproxy", "serve", *knobs],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    return [line for line in run.stdout.splitlines() if "deploy/serve.py" in line]


def test_make_serve_passes_its_knobs_to_the_launcher():
    launch = make_serve("REPLICAS=3", "MAX_TRAININGS=2", "BIND=0.0.0.0", "BACKENDS=10.0.0.3:8501")
    assert launch == [
        "exec .venv/bin/python deploy/serve.py --replicas 3 --port 8500 --bind 0.0.0.0 --max-trainings 2 "
        "--backends 10.0.0.3:8501"
    ]
    # `make run` keeps its own default port (8501); a PORT given to `make serve` is HAProxy's.
    assert make_serve("PORT=9000") == [
        "exec .venv/bin/python deploy/serve.py --replicas 2 --port 9000 --bind 127.0.0.1"
    ]
    assert make_serve("PROXY=no")[0].endswith("--no-proxy")


def test_backend_names_are_cookie_safe():
    assert parse_backend("10.0.0.3:8501").name == "10-0-0-3-8501"
    assert parse_backend("[fd00::3]:8502").host == "fd00::3"
