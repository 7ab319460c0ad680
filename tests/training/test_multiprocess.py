"""Training over several processes on JAX's distributed runtime (``train --processes`` / ``--coordinator``).

The criterion of the whole feature: a run over two processes is the run over one, with the same global
batch and seed (the same losses at every step, the same parameters up to the order of float sums). And
its failures: a process whose peer never comes, or dies mid-run, ends with one line in bounded time.
Everything runs real processes on loopback ports picked at run time, with a tiny model and short timeouts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from explorer.cli.main import main
from explorer.cli.processes import free_loopback_port
from explorer.training.tasks import TaskSpec, sample_batch, sample_rows
from tests.conftest import ROOT

# A model small enough that compiling, not training, is most of a run.
TINY = ["--task", "reverse", "--batch-size", "8", "--seq-len", "8", "--d-model", "16", "--heads", "2", "--layers", "1"]
TINY += ["--steps-per-chunk", "10", "--warmup", "5", "--json"]
# Generous for a loaded machine (importing JAX alone can take 20 s), yet bounded: a test never hangs.
INIT_TIMEOUT, HEARTBEAT_TIMEOUT = 60, 15
STARTUP = 120  # seconds a process may take to start, compile and finish a tiny run here


def train_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "explorer", "train", *TINY, *flags]


def environment(tmp: Path) -> dict[str, str]:
    # TMPDIR: the logs a supervisor keeps of failed workers land in the test's folder.
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)}


def start(flags: list[str], cwd: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    """A ``train`` command in the background, its stdout and stderr going to files (read while it runs)."""
    out, err = cwd / f"{name}.out", cwd / f"{name}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(train_command(*flags), cwd=cwd, env=environment(cwd), stdout=stdout, stderr=stderr)
    return process, out, err


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def flat_params(path: Path) -> np.ndarray:
    tensors = safetensors.numpy.load_file(path)
    return np.concatenate([tensors[name].ravel() for name in sorted(tensors)])


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_rows_of_a_batch_are_the_same_however_the_batch_is_split():
    """Row r of a batch depends only on the key and r: a device (or a process) drawing rows 5..7 draws
    exactly those rows of the whole batch, for every task."""
    stream = jnp.asarray(np.random.default_rng(0).integers(3, 500, 2000), jnp.int32)
    symbols = jnp.arange(3, 19, dtype=jnp.int32)
    key = jax.random.PRNGKey(7)
    for task in ("mlm", "causal", "reverse", "sort", "copy"):
        spec = TaskSpec(task, batch_size=8, seq_len=12)
        source = stream if spec.is_text else symbols
        whole = jax.device_get(sample_batch(spec, source, key))  # [8, ...]
        for rows in ([0, 1, 2, 3], [4, 5, 6, 7], [5, 6, 7], [2]):
            part = jax.device_get(sample_rows(spec, source, key, jnp.asarray(rows)))
            for field, values in zip(part._fields, part, strict=True):
                np.testing.assert_array_equal(values, getattr(whole, field)[rows], err_msg=f"{task} {field}")
        assert not np.array_equal(whole.inputs[0], whole.inputs[1])  # rows are drawn independently


# The run every equality test repeats over several processes: 30 steps, evaluated once at the end.
EQUAL_RUN = ["--steps", "30", "--eval-every", "30", "--init-timeout", str(INIT_TIMEOUT)]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[dict, np.ndarray]:
    """The reference: ``EQUAL_RUN`` in one process (2 CPU devices, conftest): its JSON summary and parameters."""
    folder = tmp_path_factory.mktemp("one-process")
    process, out, err = start([*EQUAL_RUN, "--out", "one.safetensors"], folder, "one")
    assert process.wait(timeout=STARTUP) == 0, err.read_text()
    return json.loads(out.read_text()), flat_params(folder / "one.safetensors")


def assert_same_run(alone: dict, params: np.ndarray, together: dict, path: Path) -> None:
    """The issue's criterion: the run over two processes (2 CPU devices each, so the batch is split four ways
    instead of two) has the same losses at every step, a final loss within 1e-4 relative, and fewer than
    0.1% of its parameter values more than 1e-5 from the one-process run's."""
    assert (alone["processes"], together["processes"]) == (1, 2)
    assert (alone["devices"], together["devices"]) == (2, 4)
    assert together["steps"] == alone["steps"] == 30
    losses = np.array(alone["loss_history"])[:, 1]  # [30]
    np.testing.assert_allclose(np.array(together["loss_history"])[:, 1], losses, rtol=1e-4)
    assert abs(together["final_train_loss"] - alone["final_train_loss"]) <= 1e-4 * abs(alone["final_train_loss"])
    assert losses[-1] < losses[0]  # it trained
    other = flat_params(path)
    assert other.shape == params.shape
    assert np.mean(np.abs(other - params) > 1e-5) < 1e-3


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path, one_process):
    """``--processes 2``: the same run as one process. Process 0 alone prints the JSON summary and saves;
    process 1 says one line."""
    process, out, err = start([*EQUAL_RUN, "--out", "two.safetensors", "--processes", "2"], tmp_path, "two")
    assert process.wait(timeout=2 * STARTUP) == 0, err.read_text()
    assert_same_run(*one_process, json.loads(out.read_text()), tmp_path / "two.safetensors")  # stdout: one JSON
    stderr = err.read_text()
    assert "process 0 of 2: all 2 processes joined (4 devices)" in stderr
    assert "process 1 of 2: finished after 30 steps" in stderr and not error_lines(stderr)
    assert [p.name for p in tmp_path.glob("*.safetensors*")] == ["two.safetensors"]


@pytest.mark.slow
def test_two_processes_started_by_hand_train_as_one(tmp_path, one_process):
    """As on two hosts: ``--coordinator 127.0.0.1:PORT --num-processes 2 --process-id 0`` and then, a few
    seconds later, ``--process-id 1`` (each with its own --out). Process 0 waits for process 1, both finish,
    and process 0's checkpoint is the one-process run's; process 1 writes nothing and prints one line."""
    cluster = ["--coordinator", f"127.0.0.1:{free_loopback_port()}", "--num-processes", "2"]
    first, out0, err0 = start([*EQUAL_RUN, *cluster, "--process-id", "0", "--out", "p0.safetensors"], tmp_path, "p0")
    wait_for(lambda: "waiting for 1 more process" in err0.read_text(), STARTUP, "process 0 to wait")
    time.sleep(3)
    assert first.poll() is None, err0.read_text()  # still waiting: it cannot train alone
    second, out1, err1 = start([*EQUAL_RUN, *cluster, "--process-id", "1", "--out", "p1.safetensors"], tmp_path, "p1")
    for process, err in ((first, err0), (second, err1)):
        assert process.wait(timeout=2 * STARTUP) == 0, err.read_text()
    assert_same_run(*one_process, json.loads(out0.read_text()), tmp_path / "p0.safetensors")
    stderr0, stderr1 = err0.read_text(), err1.read_text()
    assert "process 0 of 2: all 2 processes joined (4 devices)" in stderr0 and not error_lines(stderr0)
    assert out1.read_text() == "" and not error_lines(stderr1)
    (line,) = stderr1.strip().splitlines()
    assert line.startswith("process 1 of 2: finished after 30 steps"), line
    assert [p.name for p in tmp_path.glob("*.safetensors*")] == ["p0.safetensors"]


@pytest.mark.slow
def test_a_process_whose_peers_never_come_times_out_with_one_line(tmp_path):
    """Process 0 waits for its peer, process 1 for a coordinator: each gives up after --init-timeout with one
    line saying what to check, exit status 2, no stack trace, no checkpoint."""
    timeout = 10
    flags = ["--steps", "10", "--num-processes", "2", "--init-timeout", str(timeout)]
    started = time.monotonic()
    runs = [
        start(
            [*flags, "--coordinator", f"127.0.0.1:{free_loopback_port()}", "--process-id", str(i), "--out", "x"],
            tmp_path,
            f"p{i}",
        )
        for i in (0, 1)
    ]
    for process, _, err in runs:
        assert process.wait(timeout=timeout + STARTUP) == 2, err.read_text()
    assert time.monotonic() - started < timeout + STARTUP
    (_, _, err0), (_, _, err1) = runs
    first, second = err0.read_text(), err1.read_text()
    assert "process 0 of 2: waiting for 1 more process" in first
    for stderr, what in ((first, "not every process joined the run"), (second, "could not join the run")):
        (line,) = error_lines(stderr)
        assert what in line and f"within {timeout} s" in line, line
        assert "Traceback" not in stderr and "Check failure" not in stderr
    assert not list(tmp_path.glob("x*"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["by hand: process 0 dies", "--processes: process 1 dies"])
def test_a_peer_killed_mid_run_ends_the_run_with_one_line(tmp_path, how):
    """Mid-run (every process has joined and the collectives are running), one process is killed: the run
    ends within the heartbeat timeout, the survivor (or the launcher) saying in one line what happened, with
    exit status 2; nothing is left running and no checkpoint is written."""
    flags = ["--steps", "100000", "--out", "x.safetensors", "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT)]
    flags += ["--init-timeout", str(INIT_TIMEOUT)]
    if how.startswith("by hand"):
        coordinator = f"127.0.0.1:{free_loopback_port()}"
        runs = [
            start(
                [*flags, "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i)],
                tmp_path,
                f"p{i}",
            )
            for i in (0, 1)
        ]
        (victim, _, _), (survivor, _, err) = runs  # process 0 hosts the coordinator: the harder loss
        watched = runs[0][2]
        workers = lambda: children(victim.pid) + children(survivor.pid)  # noqa: E731
    else:
        survivor, _, err = start([*flags, "--processes", "2"], tmp_path, "launcher")
        watched = err
        workers = lambda: children(survivor.pid)  # noqa: E731
    wait_for(lambda: "all 2 processes joined" in watched.read_text(), STARTUP, "every process to join")
    wait_for(lambda: len(workers()) == 2, 10, "both workers")
    # Running collectives: gloo logs each worker's connection to its peers in the worker's log.
    logs = [Path(open(f"/proc/{pid}/cmdline").read().split("\0")[-2]) for pid in workers()]
    wait_for(lambda: all("Gloo" in log.read_text() for log in logs), STARTUP, "the first collective")
    time.sleep(2)
    pids = workers()
    doomed = victim.pid if how.startswith("by hand") else max(workers())  # by hand: its worker dies with it
    os.kill(doomed, signal.SIGKILL)
    killed_at = time.monotonic()
    code = survivor.wait(timeout=HEARTBEAT_TIMEOUT + 60)
    assert time.monotonic() - killed_at < HEARTBEAT_TIMEOUT + 60
    stderr = err.read_text()
    assert code == 2, stderr
    (line,) = error_lines(stderr)
    if how.startswith("by hand"):
        assert line.startswith("error: process 1 of 2") and "stopped" in line
        assert "lost another process" in line or "died or stopped answering" in line, line
        victim.wait(timeout=10)
    else:
        assert line.startswith("error: process 1 of 2 was ended by SIGKILL"), line
    assert "Traceback" not in stderr and "Check failure" not in stderr
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 15, "no worker left")
    assert not list(tmp_path.glob("x.safetensors*"))


@pytest.mark.parametrize(
    "flags,fragment",
    [
        (["--processes", "2", "--coordinator", "127.0.0.1:8800"], "either --processes"),
        (["--coordinator", "127.0.0.1", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--coordinator", "127.0.0.1:8800", "--num-processes", "2", "--process-id", "2"], "between 0 and 1"),
        (["--coordinator", "127.0.0.1:8800", "--num-processes", "2"], "--process-id"),
        (["--processes", "2", "--batch-size", "6"], "multiple of 4"),  # 2 processes x 2 devices (conftest)
    ],
)
def test_process_flags_are_checked_before_anything_starts(flags, fragment, capsys, tmp_path):
    assert main(["train", "--task", "reverse", "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line.startswith("error:") and fragment in line, line
    assert not jax.distributed.is_initialized()  # the supervisor never joins a run itself
