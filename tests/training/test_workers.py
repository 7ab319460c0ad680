"""Training in worker processes: the same run as in-process, a server-wide limit with a queue, killed
workers reported as failed, abandoned sessions' trainings stopped, and a paused run kept for a reloaded
page to attach to (never for two windows at once)."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

from explorer.model.config import ModelConfig
from explorer.text.texts import GRAMMAR_VOCAB_SIZE
from explorer.training.config import default_train_config
from explorer.training.remote_trainer import QUEUED, RunOpenElsewhere, TrainingLost
from explorer.training.runner import Trainer
from explorer.training.status import FAILED, FINISHED, RUNNING, STOPPED
from explorer.training.workers import TrainingPool

pytestmark = pytest.mark.slow  # worker processes import JAX and compile: seconds each

SMALL = ModelConfig(
    vocab_size=GRAMMAR_VOCAB_SIZE, d_model=32, num_heads=2, num_layers=2, ffn_size=64, max_len=64, tie_embeddings=False
)


def train_config(steps: int):
    """A toy task that compiles in seconds; a huge ``steps`` keeps it running until it is stopped."""
    return default_train_config(
        "reverse", seq_len=8, steps=steps, batch_size=16, steps_per_chunk=20, eval_every=60, learning_rate=3e-3
    )


LONG = train_config(1_000_000)


def wait_for(condition, timeout: float = 60.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    """Workers inherit the environment: EXPLORER_JAX_CACHE (conftest) keeps their compiles out of the
    user's cache; this process fills the same cache for the in-process reference run."""
    from explorer.model.inference import enable_compilation_cache

    enable_compilation_cache()


@pytest.fixture
def pool_factory():
    pools = []

    def make(**kwargs) -> TrainingPool:
        pool = TrainingPool(**kwargs)
        pools.append(pool)
        assert pool.wait_ready(120), "the worker processes did not start"
        return pool

    yield make
    for pool in pools:
        pool.shutdown()


def test_worker_training_matches_in_process_training(pool_factory):
    pool = pool_factory(max_trainings=1, workers=1, nice=5)
    info = pool.worker_info()[0]
    assert info["pid"] != os.getpid()
    # A lower OS priority than this process (niceness stops at 19).
    assert info["niceness"] == min(19, os.nice(0) + 5)
    assert info["devices"] == int(os.environ["EXPLORER_CPU_DEVICES"]), "data parallelism works in workers"

    config = train_config(60)
    remote = pool.trainer(SMALL, config)
    assert remote.start() is True
    assert wait_for(lambda: remote.status().state == FINISHED)
    local = Trainer(SMALL, config)
    local.run()
    remote_status, local_status = remote.status(), local.status()
    assert remote_status.steps == local_status.steps
    assert remote_status.loss == local_status.loss  # same seed, same batches, same devices: same numbers
    assert remote_status.eval_loss == local_status.eval_loss
    # Methods and attributes without special handling go through unchanged.
    assert remote.snapshot_steps() == local.snapshot_steps()
    remote_snapshot, local_snapshot = remote.snapshot(30), local.snapshot(30)
    assert remote_snapshot.step == local_snapshot.step
    np.testing.assert_array_equal(remote_snapshot.attention, local_snapshot.attention)
    assert remote_snapshot.params is None, "parameters stay in the worker: bundle() makes a model of them"
    last = remote.snapshot_steps()[-1]
    assert remote.snapshot(last) is remote.snapshot(last), "a snapshot taken at a step crosses the pipe once"
    assert remote.info().probe.labels == local.info().probe.labels and remote.info() is remote.info()
    assert remote.probe.labels == local.probe.labels
    assert remote.bundle().info["steps"] == 60
    assert pool.running() == 0, "a finished training gives its slot back"


def test_queued_start_runs_when_a_slot_frees(pool_factory):
    pool = pool_factory(max_trainings=1, workers=2)
    first, second, third = (pool.trainer(SMALL, LONG) for _ in range(3))
    assert first.start() is True
    assert wait_for(lambda: first.status().state == RUNNING)
    assert second.start() is True and third.start() is True
    assert second.status().state == QUEUED and second.queue_position() == 1
    assert third.status().state == QUEUED and third.queue_position() == 2
    assert "you are next" in second.status().message
    assert second.start() is False, "one training per trainer: a second start while waiting is refused"
    assert pool.running() == 1
    stepping = pool.trainer(SMALL, LONG)
    assert stepping.step() is True and stepping.status().state == QUEUED, "a single Step waits for a slot too"
    stepping.close()

    third.stop()  # leaving the queue
    assert third.queue_position() is None and third.status().state != QUEUED
    first.stop()
    assert first.status().state == STOPPED
    assert wait_for(lambda: second.status().state == RUNNING), "the queued start did not run"
    assert wait_for(lambda: second.status().step > 0)
    assert pool.running() == 1
    second.stop()
    assert wait_for(lambda: pool.running() == 0)


def test_killed_worker_is_reported_failed_and_frees_its_slot(pool_factory):
    pool = pool_factory(max_trainings=1, workers=1)
    victim = pool.trainer(SMALL, LONG)
    victim.start()
    assert wait_for(lambda: victim.status().step > 0)
    waiting = pool.trainer(SMALL, LONG)  # on the same (only) worker: lost with it
    pid = pool.worker_info()[0]["pid"]

    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: victim.status().state == FAILED, timeout=10)
    status = victim.status()
    assert "stopped unexpectedly" in status.message and status.step > 0, "the last progress stays visible"
    assert waiting.status().state == FAILED
    with pytest.raises(TrainingLost):
        victim.snapshot_steps()
    victim.stop()  # nothing to stop: no error
    assert wait_for(lambda: pool.running() == 0, timeout=10)

    # A fresh worker replaced the dead one, and the freed slot takes a new training at once.
    assert wait_for(lambda: pool.worker_info()[0]["pid"] != pid, timeout=30)
    fresh = pool.trainer(SMALL, LONG)
    assert fresh.start() is True
    assert fresh.status().state == RUNNING
    fresh.stop()


def test_abandoned_session_training_stops(pool_factory):
    pool = pool_factory(max_trainings=1, workers=1, check_every=0.1, abandon_after=1.0)
    connected = threading.Event()
    connected.set()
    remote = pool.trainer(SMALL, LONG, owner="session-1", alive=connected.is_set)
    remote.start()
    assert wait_for(lambda: remote.status().step > 0)

    # A short disconnection (a network blip, a reload) is forgiven.
    connected.clear()
    time.sleep(0.4)
    connected.set()
    time.sleep(1.2)
    assert remote.status().state == RUNNING

    connected.clear()
    assert wait_for(lambda: remote.status().state == FAILED, timeout=10)
    assert "went away" in remote.status().message
    assert pool.running() == 0
    queued_behind = pool.trainer(SMALL, LONG)
    assert queued_behind.start() is True and queued_behind.status().state == RUNNING
    queued_behind.stop()


def test_one_trainer_per_owner(pool_factory):
    pool = pool_factory(max_trainings=2, workers=1)
    old = pool.trainer(SMALL, LONG, owner="session-1")
    old.start()
    assert wait_for(lambda: old.status().state == RUNNING)
    new = pool.trainer(SMALL, LONG, owner="session-1")
    assert old.status().state == FAILED, "the owner's previous trainer is closed"
    assert pool.running() == 0
    assert new.status().state == "idle"


def test_bad_settings_raise_the_trainers_error(pool_factory):
    pool = pool_factory(max_trainings=1, workers=1)
    too_long = train_config(10).replace(seq_len=SMALL.max_len + 1)
    with pytest.raises(ValueError, match="shorter sequence length"):
        pool.trainer(SMALL, too_long)


def test_a_dropped_proxy_frees_its_training(pool_factory):
    pool = pool_factory(max_trainings=1, workers=1, check_every=0.1)
    remote = pool.trainer(SMALL, LONG)
    remote.start()
    assert wait_for(lambda trainer=remote: trainer.status().state == RUNNING)
    del remote  # a session that ended without closing its trainer
    gc.collect()
    assert wait_for(lambda: pool.running() == 0, timeout=10)
    other = pool.trainer(SMALL, LONG)
    assert other.start() is True and other.status().state == RUNNING
    other.stop()


def test_a_reloaded_page_attaches_to_its_paused_run_and_a_second_window_is_refused(pool_factory):
    # Not under SCHED_IDLE: these tests time the pool's monitor, and on a loaded machine idle workers starve.
    pool = pool_factory(max_trainings=1, workers=1, idle=False, check_every=0.1, abandon_after=0.5, keep_paused=30.0)
    first_window = threading.Event()
    first_window.set()
    remote = pool.trainer(SMALL, LONG, owner="session-1", alive=first_window.is_set)
    run_id = remote.run_id
    assert isinstance(run_id, str) and len(run_id) >= 12 and run_id.replace("-", "").replace("_", "").isalnum()
    remote.start()
    assert wait_for(lambda trainer=remote: trainer.status().step > 0)
    remote.stop()
    paused = remote.status()
    assert paused.state == STOPPED

    # The same link in a second window while the first is still connected: refused, the run untouched.
    with pytest.raises(RunOpenElsewhere, match="another window"):
        pool.attach(run_id, owner="session-2", alive=lambda: True, wait=0.3)
    assert remote.status().state == STOPPED
    assert pool.attach("no-such-run", owner="session-2") is None, "an unknown id is not an error"

    # A reload: the first session disconnects (its state, with the old proxy, goes later) and a new one
    # attaches within the time the old one takes to go, waiting for it.
    threading.Timer(0.5, first_window.clear).start()
    second_window = threading.Event()
    second_window.set()
    attached = pool.attach(run_id, owner="session-2", alive=second_window.is_set, wait=5.0)
    assert attached is not None and attached.run_id == run_id
    status = attached.status()
    assert status.step == paused.step and status.loss == paused.loss and status.state == STOPPED
    del remote  # the old session's state is dropped: its proxy no longer counts
    gc.collect()
    time.sleep(1.0)  # past abandon_after: only the newest proxy's session decides
    assert attached.status().state == STOPPED
    assert attached.start() is True  # Play continues the same run
    assert wait_for(lambda: attached.status().step > paused.step)
    assert attached.status().eval_steps[0] == 0 and attached.status().loss[: len(paused.loss)] == paused.loss
    attached.stop()


def test_a_paused_run_is_kept_for_keep_paused_and_a_running_one_for_abandon_after(pool_factory):
    pool = pool_factory(max_trainings=2, workers=1, idle=False, check_every=0.1, abandon_after=0.5, keep_paused=3.0)
    sessions = {name: threading.Event() for name in ("paused", "running")}
    trainers = {}
    for name, connected in sessions.items():
        connected.set()
        trainers[name] = pool.trainer(SMALL, LONG, owner=name, alive=connected.is_set)
        trainers[name].start()
    assert wait_for(lambda: all(t.status().step > 0 for t in trainers.values()))
    trainers["paused"].stop()
    run_ids = {name: t.run_id for name, t in trainers.items()}
    assert len(set(run_ids.values())) == 2
    gone_at = time.monotonic()
    for connected in sessions.values():
        connected.clear()
    # The running one goes after abandon_after; the paused one stays for keep_paused.
    assert wait_for(lambda: trainers["running"].status().state == FAILED, timeout=10)
    assert time.monotonic() - gone_at < 3.0
    assert trainers["paused"].status().state == STOPPED
    assert wait_for(lambda: trainers["paused"].status().state == FAILED, timeout=10)
    assert time.monotonic() - gone_at >= 3.0
    assert pool.attach(run_ids["paused"], owner="later") is None, "a closed run cannot be attached to"
    assert pool.running() == 0
