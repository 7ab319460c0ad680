"""The training loop: loss falls on every task, reverse is learned, blow-ups stop safely, the worker
thread starts/stops/resumes, and the CLI writes a checkpoint the app can open."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explorer.model import checkpoint
from explorer.model.config import ModelConfig
from explorer.text.texts import GRAMMAR_VOCAB_SIZE
from explorer.training.config import (
    TASK_DEFAULTS,
    LiveSettings,
    TrainConfig,
    default_model_config,
    default_train_config,
)
from explorer.training.parallel import BATCH_AXIS, compile_functions, training_devices
from explorer.training.runner import Trainer
from explorer.training.status import DIVERGED, FINISHED, RUNNING, STOPPED
from explorer.training.step import init_state, make_step_fn, param_layout, parameter_groups, state_params
from explorer.training.tasks import TASKS, sample_batch

pytestmark = pytest.mark.slow  # trainings and trainer threads: seconds each

# Small enough to compile and train in seconds on 2 cores, big enough to learn each task. Every setting
# is one the CLI can express, so the CLI test reuses compiled programs (compile_functions is cached).
SMALL = ModelConfig(
    vocab_size=GRAMMAR_VOCAB_SIZE, d_model=32, num_heads=2, num_layers=2, ffn_size=64, max_len=64, tie_embeddings=False
)


def small_train_config(task: str, **changes) -> TrainConfig:
    base = dict(steps=120, batch_size=16, steps_per_chunk=20, eval_every=60, learning_rate=3e-3)
    base.update(changes)
    seq_len = {"mlm": 32, "causal": 32}.get(task, 8)
    return default_train_config(task, seq_len=seq_len, **base)


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    """Compiles dominate these tests; the persistent cache makes every later run fast."""
    from explorer.model.inference import enable_compilation_cache

    enable_compilation_cache()


@pytest.fixture(scope="module")
def finished_runs():
    """One short run per task, shared by the tests that only read results."""
    runs = {}
    for task in TASKS:
        trainer = Trainer(SMALL, small_train_config(task, **REVERSE_RUN if task == "reverse" else {}))
        runs[task] = (trainer, trainer.run())
    return runs


# Reverse runs longer: it must not just improve but reach high accuracy within a small budget.
REVERSE_RUN = dict(steps=400, eval_every=100)


@pytest.mark.parametrize("task", TASKS)
def test_loss_falls_on_every_task(task, finished_runs):
    trainer, status = finished_runs[task]
    steps = trainer.train_config.steps
    assert status.state == FINISHED, status.message
    assert status.step == steps
    first, last = np.mean(status.loss[:10]), np.mean(status.loss[-10:])
    assert last < 0.85 * first, (task, first, last)
    assert status.eval_steps[0] == 0 and status.eval_steps[-1] == steps
    assert status.eval_loss[-1] < status.eval_loss[0]
    # Telemetry: one row per step, one column per parameter group, all finite and positive.
    assert status.group_grad_norms.shape == (steps, len(parameter_groups(SMALL)))
    assert np.all(np.isfinite(status.group_update_ratios)) and np.all(status.group_grad_norms > 0)
    every = trainer.train_config.eval_every
    assert status.snapshot_steps == tuple(range(0, steps + 1, every))


def test_reverse_reaches_high_accuracy_with_attention_near_the_anti_diagonal(finished_runs):
    trainer, status = finished_runs["reverse"]
    assert status.eval_accuracy[-1] >= 0.95, status.summary()["eval"]
    # Some head in the model must look where reversing needs it to (uniform attention scores 1/8).
    assert status.closeness.shape == (2, 2)
    assert status.closeness.max() > 0.6, status.closeness
    snap = trainer.snapshot()
    assert snap.step == 400 and snap.attention.shape == (2, 2, 8, 8)
    np.testing.assert_allclose(snap.attention.sum(-1), 1.0, rtol=1e-5)


def test_blow_up_stops_and_keeps_the_last_finite_parameters():
    trainer = Trainer(SMALL, small_train_config("reverse", learning_rate=1e4, warmup_steps=0, steps=200))
    status = trainer.run()
    assert status.state == DIVERGED
    assert status.step < 200
    assert "blew up" in status.message and "last finite" in status.message
    params = trainer.bundle().params
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(params))
    # The last point on the curve is the failing step; it is not finite or the step after it is not taken.
    assert status.steps[-1] == status.step + 1
    assert not trainer.start()  # a diverged run does not continue; reset first


def test_trains_on_uploaded_text_with_its_own_vocabulary(finished_runs):
    text = "Der Hund schläft im Garten, und die Katze sitzt auf dem Dach. " * 200
    trainer = Trainer(SMALL, small_train_config("mlm"))  # warm: same programs as the corpus run
    uploaded = Trainer(SMALL, small_train_config("mlm"), text=text)
    assert uploaded.vocab != trainer.vocab and uploaded.vocab.size == SMALL.vocab_size
    status = uploaded.run()
    assert status.state == FINISHED
    assert status.eval_loss[-1] < status.eval_loss[0]
    assert uploaded.bundle().info["text"] == "uploaded text"
    with pytest.raises(ValueError, match="longer text"):
        Trainer(SMALL, small_train_config("mlm"), text="too short")
    with pytest.raises(ValueError, match="empty"):
        Trainer(SMALL, small_train_config("mlm"), text="   ")


def test_fused_chunk_matches_single_steps():
    config = small_train_config("copy")
    functions = compile_functions(SMALL, config)  # the same programs the copy run used
    toy = jnp.asarray(np.arange(3, 19, dtype=np.int32))
    fused, metrics = functions.chunk(init_state(SMALL, config), toy, jnp.ones(20, bool))
    single = init_state(SMALL, config)
    losses = []
    for _ in range(20):
        single, m = functions.step(single, toy)
        losses.append(float(m["loss"]))
    np.testing.assert_allclose(np.asarray(metrics["loss"]), losses, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(fused.flat_params), np.asarray(single.flat_params), rtol=1e-3, atol=1e-5)
    # Inactive steps change nothing.
    same, _ = functions.chunk(fused, toy, jnp.zeros(20, bool))
    np.testing.assert_array_equal(np.asarray(same.flat_params), np.asarray(fused.flat_params))
    assert int(same.step) == 20


def test_data_parallel_step_equals_one_device_on_the_whole_batch():
    """Split over two devices (each differentiating half the batch), a step applies the update one device
    computes from the whole batch: the loss, the accuracy and the new parameters agree."""
    assert len(jax.devices()) >= 2, "conftest asks explorer for two CPU devices"
    config = small_train_config("mlm", warmup_steps=0)  # a first step that moves the parameters
    assert training_devices(config.batch_size) == 2 and training_devices(15) == 1  # an odd batch stays whole
    stream = jnp.asarray(np.random.default_rng(0).integers(3, SMALL.vocab_size, 5000), jnp.int32)
    batch = sample_batch(config.task_spec, stream, jax.random.PRNGKey(4))  # [16, 32]
    state = init_state(SMALL, config)
    whole, whole_metrics = jax.jit(make_step_fn(SMALL, config))(state, batch, jnp.bool_(True))
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), (BATCH_AXIS,))
    P = jax.sharding.PartitionSpec
    split = jax.jit(
        jax.shard_map(
            make_step_fn(SMALL, config, axis_name=BATCH_AXIS),
            mesh=mesh,
            in_specs=(P(), P(BATCH_AXIS), P()),
            out_specs=P(),
        )
    )
    halves, halves_metrics = split(state, batch, jnp.bool_(True))
    for name in ("loss", "accuracy", "grad_norm", "group_grad_norms"):
        np.testing.assert_allclose(np.asarray(halves_metrics[name]), np.asarray(whole_metrics[name]), rtol=1e-5)
    # Adam's moments hold the (clipped) gradient itself: compare it entry by entry. (The parameters after
    # one Adam step are ~lr * sign(gradient), which turns rounding noise in zero gradients into +-lr.)
    for ours, reference in zip(jax.tree.leaves(halves.opt_state), jax.tree.leaves(whole.opt_state), strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), rtol=1e-4, atol=1e-8)
    assert np.abs(np.asarray(whole.flat_params - state.flat_params)).max() > 1e-4  # the step did move


def test_a_run_does_not_depend_on_the_number_of_devices():
    """Each device draws its rows of the batch from their indices, so one device and two train on the same data."""
    config = small_train_config("mlm")
    stream = jnp.asarray(np.random.default_rng(1).integers(3, SMALL.vocab_size, 5000), jnp.int32)
    runs = []
    for devices in (1, 2):
        state, metrics = compile_functions(SMALL, config, devices=devices).chunk(
            init_state(SMALL, config), stream, jnp.ones(20, bool)
        )
        runs.append((state, metrics))
    (one, one_metrics), (two, two_metrics) = runs
    # Equal losses at every step mean equal batches and equal updates (the parameters themselves differ
    # by rounding noise amplified by Adam in gradients that are zero, such as the key bias's).
    np.testing.assert_allclose(np.asarray(two_metrics["loss"]), np.asarray(one_metrics["loss"]), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(two_metrics["accuracy"]), np.asarray(one_metrics["accuracy"]), atol=0.02)
    assert float(one_metrics["loss"][-1]) < float(one_metrics["loss"][0]) and int(two.step) == int(one.step) == 20


def test_param_layout_round_trips():
    layout = param_layout(SMALL)
    state = init_state(SMALL, small_train_config("mlm"))
    params = state_params(SMALL, state)
    np.testing.assert_array_equal(np.asarray(layout.flatten(params)), np.asarray(state.flat_params))
    assert layout.groups == ("embedding", "layer 1", "layer 2", "output")
    # A tied output head reads the embedding table, so its gradient counts under "embedding".
    tied = param_layout(dataclasses.replace(SMALL, tie_embeddings=True))
    assert tied.groups == ("embedding", "layer 1", "layer 2")
    # Group norms (summed over static slices for speed) agree with a per-entry segment sum.
    flat = jax.random.normal(jax.random.PRNGKey(0), (layout.size,))
    expected = jnp.sqrt(jax.ops.segment_sum(flat**2, layout.group_ids, num_segments=len(layout.groups)))
    np.testing.assert_allclose(np.asarray(layout.group_norms(flat)), np.asarray(expected), rtol=1e-5)


def test_snapshots_at_chosen_steps(finished_runs):
    trainer = Trainer(SMALL, small_train_config("copy"), snapshot_at=(25, 30, 100))
    status = trainer.run()
    # Chosen steps land at the end of the chunk (20 steps) that reaches them; 60 and 120 are regular.
    assert status.snapshot_steps == (0, 40, 60, 100, 120)
    early, late = trainer.snapshot(40), trainer.snapshot(120)
    assert early.step == 40 and late.step == 120 and trainer.snapshot(59).step == 40
    assert not np.array_equal(np.asarray(early.attention), np.asarray(late.attention))
    assert early.embedding_points.shape == (16, 2) and len(early.embedding_labels) == 16


def test_worker_thread_start_stop_resume_reset():
    trainer = Trainer(SMALL, small_train_config("copy", steps=100_000, steps_per_chunk=10))
    assert trainer.start()
    assert not trainer.start()  # already running
    deadline = time.monotonic() + 60
    while trainer.status().step < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert trainer.status().state == RUNNING
    trainer.stop()
    stopped = trainer.status()
    assert stopped.state == STOPPED and 30 <= stopped.step < 100_000
    assert "resume" in stopped.message
    time.sleep(0.2)
    assert trainer.status().step == stopped.step  # really stopped
    assert trainer.resume()
    while trainer.status().step < stopped.step + 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    trainer.stop()
    assert trainer.status().step >= stopped.step + 20
    bundle = trainer.bundle()
    assert bundle.task == "copy" and bundle.config == SMALL and bundle.trained
    trainer.reset()
    fresh = trainer.status()
    assert fresh.step == 0 and fresh.loss == () and fresh.state == "idle"


def test_status_is_a_consistent_copy(finished_runs):
    trainer, _ = finished_runs["sort"]
    status = trainer.status()
    assert len(status.steps) == len(status.loss) == len(status.accuracy) == len(status.grad_norm) == 120
    assert list(status.steps) == list(range(1, 121))
    summary = status.summary()
    json.dumps(summary)  # JSON-ready
    assert summary["steps"] == 120 and len(summary["loss_history"]) == 120
    assert all(math.isfinite(v) for _, v in summary["loss_history"])


def test_cli_trains_and_saves_a_checkpoint(tmp_path, capsys):
    from explorer.cli.main import main

    out = tmp_path / "copy.npz"
    argv = ["train", "--task", "copy", "--steps", "120", "--out", str(out), "--json"]
    argv += [
        "--d-model",
        "32",
        "--heads",
        "2",
        "--ffn",
        "64",
        "--vocab-size",
        str(GRAMMAR_VOCAB_SIZE),
        "--max-len",
        "64",
    ]
    argv += ["--seq-len", "8", "--steps-per-chunk", "20", "--batch-size", "16", "--eval-every", "60"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 120 and summary["state"] == "finished"
    assert summary["steps_per_second"] > 0 and summary["eval"] and len(summary["loss_history"]) == 120
    bundle = checkpoint.load(out)
    assert bundle.task == "copy" and bundle.config.d_model == 32 and bundle.info["steps"] == 120


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    from explorer.cli.main import main

    assert main(["train", "--task", "reverse", "--steps", "0", "--out", str(tmp_path / "x.npz")]) == 2
    assert "steps" in capsys.readouterr().err


def test_training_figures_draw_what_they_are_given(finished_runs):
    from explorer.figures import training as figs

    trainer, status = finished_runs["reverse"]
    loss = figs.loss_figure(status.steps, status.loss, status.eval_steps, status.eval_loss)
    assert [trace.name for trace in loss.data] == ["train", "held-out"]
    assert "train loss" in loss.data[0].hovertemplate and loss.layout.yaxis.type == "log"
    telemetry = figs.telemetry_figure(status.steps, status.groups, status.group_grad_norms, status.group_update_ratios)
    assert len(telemetry.data) == 2 * len(status.groups)
    closeness = figs.closeness_figure(status.closeness)
    assert list(closeness.data[0].x) == ["H1", "H2"] and list(closeness.data[0].y) == ["L1", "L2"]
    snap = trainer.snapshot()
    plane = figs.embedding_plane_figure(snap.embedding_points, snap.embedding_labels, "embeddings")
    assert list(plane.data[0].text) == list(snap.embedding_labels)
    with pytest.raises(ValueError, match="same length"):
        figs.loss_figure([1, 2], [0.5], [], [])
    with pytest.raises(ValueError, match="steps, groups"):
        figs.telemetry_figure(status.steps, status.groups[:-1], status.group_grad_norms, status.group_update_ratios)
    with pytest.raises(ValueError, match="labels"):
        figs.embedding_plane_figure(snap.embedding_points, snap.embedding_labels[:-1], "embeddings")


@pytest.mark.parametrize("value,devices,warns", [("1", 1, False), ("3", 3, False), ("two", 2, True), ("0", 2, True)])
def test_cpu_device_count_setting(value, devices, warns):
    """EXPLORER_CPU_DEVICES sets how many devices training may split a batch over; a bad value is named
    in a warning and the default (one per core, pinned to 2 here) is used instead of failing the import."""
    # The default is one device per core: pin the core count so that the test means the same anywhere.
    code = "import os; os.sched_getaffinity = lambda pid: {0, 1}; import explorer, jax; print(len(jax.devices()))"
    env = {**os.environ, "EXPLORER_CPU_DEVICES": value}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == devices
    assert ("EXPLORER_CPU_DEVICES must be a positive whole number" in result.stderr) == warns


def test_cli_flag_defaults_are_the_config_dataclasses_own():
    from explorer.cli.main import build_parser

    args = build_parser().parse_args(["train", "--out", "x.safetensors"])
    run, model = TrainConfig(), ModelConfig()
    assert (args.task, args.steps, args.lr, args.batch_size, args.warmup, args.seed) == (
        run.task, run.steps, run.learning_rate, run.batch_size, run.warmup_steps, run.seed
    )  # fmt: skip
    assert (args.mask_rate, args.steps_per_chunk, args.eval_every, args.text) == (
        run.mask_rate, run.steps_per_chunk, run.eval_every, run.text
    )  # fmt: skip
    assert (args.max_len, args.positional, args.layer_norm, args.dropout) == (
        model.max_len, model.positional, model.layer_norm, model.dropout
    )  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_cli_builds_the_tasks_default_model_as_the_train_page_does(task):
    """One source of per-task defaults: the command line with default flags, and the Train page for that
    task at its starting architecture, build the same model and train it the same way."""
    from explorer.cli.main import build_parser
    from explorer.cli.train import configs_from_args

    args = build_parser().parse_args(["train", "--task", task, "--text", "grammar", "--out", "x.safetensors"])
    model_config, train_config, text = configs_from_args(args)
    defaults = TASK_DEFAULTS[task]
    assert text is None and model_config == default_model_config(task, "grammar")
    assert (model_config.d_model, model_config.num_layers, model_config.num_heads) == (
        defaults.d_model, defaults.num_layers, defaults.num_heads
    )  # fmt: skip
    assert model_config.ffn_size == 4 * defaults.d_model and model_config.tie_embeddings == defaults.tie_embeddings
    page = LiveSettings(task=task, text="grammar", d_model=64, num_layers=2, num_heads=4)
    if defaults.d_model == page.d_model:  # the toy tasks: the page starts at their own size
        assert page.model_config() == model_config
    live = page.train_config()
    same = ("task", "text", "batch_size", "seq_len", "learning_rate", "warmup_steps", "seed", "mask_rate")
    assert {f: getattr(live, f) for f in same} == {f: getattr(train_config, f) for f in same}


def test_toy_tasks_get_a_small_model_with_the_toy_vocabulary():
    from explorer.cli.main import build_parser
    from explorer.cli.train import configs_from_args

    model_config, _, _ = configs_from_args(build_parser().parse_args(["train", "--task", "reverse", "--out", "x"]))
    assert model_config.vocab_size == GRAMMAR_VOCAB_SIZE and model_config.d_model == 64
    assert not model_config.tie_embeddings and LiveSettings().model_config() == model_config  # the page's start
    english, _, _ = configs_from_args(build_parser().parse_args(["train", "--task", "mlm", "--out", "x"]))
    assert english == ModelConfig()  # the English default model's architecture (the README's command)
    flags = ["train", "--task", "sort", "--d-model", "32", "--heads", "2", "--vocab-size", "600", "--out", "x"]
    given, _, _ = configs_from_args(build_parser().parse_args(flags))
    assert (given.d_model, given.num_heads, given.vocab_size, given.ffn_size) == (32, 2, 600, 128)


def test_cli_trains_on_a_text_file_and_on_a_named_text(tmp_path, capsys):
    from explorer.cli.main import main

    text = tmp_path / "story.txt"
    text.write_text("Der Hund schläft im Garten, und die Katze sitzt auf dem Dach. " * 200, encoding="utf-8")
    small = ["--d-model", "32", "--heads", "2", "--ffn", "64", "--vocab-size", str(GRAMMAR_VOCAB_SIZE)]
    small += [
        "--max-len",
        "64",
        "--seq-len",
        "32",
        "--steps-per-chunk",
        "20",
        "--batch-size",
        "16",
        "--eval-every",
        "60",
    ]
    for source, name in ((str(text), "uploaded text"), ("grammar", "agreement grammar (bundled)")):
        out = tmp_path / f"{len(name)}.safetensors"
        argv = ["train", "--task", "mlm", "--steps", "60", "--text", source, "--out", str(out), "--json", *small]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["eval"][-1]["loss"] < summary["eval"][0]["loss"]
        bundle = checkpoint.load(out)
        assert bundle.info["text"] == name and bundle.vocab.closed
    assert main(["train", "--task", "reverse", "--text", str(text), "--out", str(tmp_path / "x")]) == 2
    assert "toy tasks" in capsys.readouterr().err


def test_pause_takes_effect_within_a_fraction_of_a_second_of_steps():
    """Live calls are sized by time, so a pause lands within a call: the steps done after asking for it
    are at most what 0.3 s of training makes at the measured rate."""
    trainer = Trainer(SMALL, small_train_config("copy", steps=100_000, steps_per_chunk=50))
    assert trainer.start()
    _wait_until(lambda: trainer.status().step >= 100 and trainer.status().steps_per_second > 0)
    for _ in range(3):  # pause and play a few times, at arbitrary moments
        asked = trainer.status()
        trainer.pause()
        paused = trainer.status()
        assert paused.state == STOPPED
        assert paused.step - asked.step <= max(2, 0.3 * asked.steps_per_second), (asked.step, paused.step)
        assert trainer.play()
        _wait_until(lambda s=paused.step: trainer.status().step >= s + 30)
    trainer.stop()


def _wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition()


def test_a_learning_rate_changed_mid_run_is_applied_from_the_next_step():
    """The telemetry's learning rate at every step is optax's warm-up + cosine schedule with the peak then
    in effect; the change reuses the compiled programs."""
    import optax

    config = small_train_config("copy", steps=200, warmup_steps=10)
    trainer = Trainer(SMALL, config)
    programs = compile_functions(SMALL, config)
    assert trainer.start(max_steps=30) and trainer.wait(60)
    trainer.set_learning_rate(1e-2)
    assert trainer.start(max_steps=30) and trainer.wait(60)
    status = trainer.status()
    assert status.step == 60 and status.peak_learning_rate == 1e-2

    def schedule(peak):
        return optax.warmup_cosine_decay_schedule(0.0, peak, 10, 200, end_value=peak * config.end_lr_fraction)

    expected = [float(schedule(3e-3)(i)) for i in range(30)] + [float(schedule(1e-2)(i)) for i in range(30, 60)]
    np.testing.assert_allclose(status.learning_rate, expected, rtol=1e-5, atol=1e-9)
    assert compile_functions(SMALL, config.replace(learning_rate=1e-2, seed=5, steps=999)) is programs
    assert trainer.bundle().info["train_config"]["learning_rate"] == 1e-2
    with pytest.raises(ValueError, match="positive"):
        trainer.set_learning_rate(float("nan"))


def test_step_is_one_update_and_a_reset_reproduces_the_losses():
    trainer = Trainer(SMALL, small_train_config("sort", steps=500))
    assert trainer.step() and trainer.wait(60)
    one = trainer.status()
    assert one.step == 1 and len(one.loss) == 1 and one.snapshot_steps == (0, 1)
    assert trainer.start(max_steps=40) and trainer.wait(60)
    first = trainer.status().loss
    trainer.reset()
    assert trainer.status().step == 0 and trainer.status().loss == ()
    # Split differently into calls (a Step, then a run to the end of a chunk): the same losses.
    assert trainer.step() and trainer.wait(60)
    assert trainer.start(max_steps=40) and trainer.wait(60)
    np.testing.assert_array_equal(trainer.status().loss, first)
    other_seed = Trainer(SMALL, small_train_config("sort", steps=500, seed=1))
    assert other_seed.start(max_steps=41) and other_seed.wait(60)
    assert other_seed.status().loss != first


def test_the_status_says_while_a_program_compiles():
    """A setup not compiled yet in this process (batch 12 appears nowhere else) says so while it does."""
    trainer = Trainer(SMALL, small_train_config("copy", batch_size=12, steps=40))
    seen = []
    assert trainer.start()
    while not trainer.wait(0.01):
        status = trainer.status()
        if status.compiling_seconds is not None:
            seen.append(status.message)
    assert seen and all("Compiling" in message and " s " in message for message in seen), seen
    assert trainer.status().compiling_seconds is None and trainer.status().state == FINISHED
