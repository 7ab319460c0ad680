"""``python -m explorer train``: train a model from the command line and save it as a checkpoint.

  python -m explorer train --task {mlm,causal,reverse,sort,copy} --steps N --out PATH [--json]
      [--processes N | --coordinator HOST:PORT --num-processes N --process-id I]

With default flags it builds what the Train page builds for the task: the per-task defaults of
``explorer.training.config`` (``TASK_DEFAULTS``, ``default_model_config``): the English default model's size
for mlm and causal, a small model with the toy vocabulary for reverse, sort and copy.

A progress bar (tqdm) goes to stderr when it is a terminal; the summary (loss history, evaluations, steps/s)
goes to stdout, as JSON with ``--json``. The loop itself lives in ``explorer.training.runner``: this module only
parses arguments, draws the bar and saves the result. Exit status: 0 when training finished, 1 when it
blew up (the last finite parameters are still saved), 2 for bad arguments.

Over several processes (``--processes N`` on this machine, or one process per host with JAX's flags
``--coordinator``, ``--num-processes``, ``--process-id``) ``--batch-size`` is the global batch: every process
trains on its share of it (``explorer.training.parallel``) and the same seed gives the same run whatever
the number of processes. Process 0 evaluates, draws the bar, prints the summary and saves the checkpoint;
the others print one line. ``explorer.cli.processes`` starts and watches the processes (exit status 2
when one could not join or the run lost one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from explorer.text.texts import DEFAULT_TEXT, TEXT_NAMES
from explorer.training.tasks import TASKS

if TYPE_CHECKING:  # imported where used: --help stays quick
    from explorer.model.config import ModelConfig
    from explorer.training.config import TrainConfig
    from explorer.training.distributed import Cluster

EXIT_DIVERGED = 1
# TrainConfig field -> the flag (argparse's name) that sets it; every one has a default.
TRAIN_FLAGS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "learning_rate": "lr",
    "warmup_steps": "warmup",
    "seed": "seed",
    "steps_per_chunk": "steps_per_chunk",
    "eval_every": "eval_every",
    "mask_rate": "mask_rate",
}
# ModelConfig field -> flag; None (not given) leaves the task's default (``default_model_config``).
MODEL_FLAGS = {
    "vocab_size": "vocab_size",
    "d_model": "d_model",
    "num_heads": "heads",
    "num_layers": "layers",
    "ffn_size": "ffn",
    "tie_embeddings": "tie_embeddings",
    "max_len": "max_len",
    "positional": "positional",
    "layer_norm": "layer_norm",
    "dropout": "dropout",
}


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers the ``train`` subcommand on ``subparsers`` (and ``run_train`` as its handler)."""
    from explorer.model.config import LAYER_NORM_PLACEMENTS, POSITIONAL_KINDS, ModelConfig
    from explorer.text.texts import VOCAB_SIZES
    from explorer.training.config import TASK_DEFAULTS, TrainConfig

    # Every default is the config dataclasses' own; the architecture's depends on the task (and the
    # vocabulary's size on the text), so those flags default to None and run_train fills them in.
    defaults, run = ModelConfig(), TrainConfig()

    def per_task(field: str) -> str:
        values = {}
        for task, task_defaults in TASK_DEFAULTS.items():
            values.setdefault(getattr(task_defaults, field), []).append(task)
        shown = {True: "yes", False: "no"}
        if len(values) == 1:
            (value,) = values
            return f"{shown.get(value, value)} for every task"
        return "; ".join(f"{'/'.join(tasks)} {shown.get(value, value)}" for value, tasks in values.items())

    train = subparsers.add_parser("train", help="train a model on a task and save a checkpoint")
    train.add_argument("--task", choices=TASKS, default=run.task, help=f"what to learn (default: {run.task})")
    train.add_argument("--steps", type=int, default=run.steps, help=f"training steps (default: {run.steps})")
    train.add_argument("--out", required=True, help="where to write the checkpoint (.safetensors)")
    train.add_argument("--json", action="store_true", help="print the summary as JSON")
    train.add_argument(
        "--text",
        default=DEFAULT_TEXT,
        help=f"what mlm/causal train on: {' or '.join(TEXT_NAMES)} (named texts), or a UTF-8 .txt file "
        f"(default: {DEFAULT_TEXT})",
    )
    train.add_argument(
        "--lr", type=float, default=run.learning_rate, help=f"peak learning rate (default: {run.learning_rate:g})"
    )
    train.add_argument("--batch-size", type=int, default=run.batch_size)
    train.add_argument("--seq-len", type=int, help=f"training sequence length (default: {per_task('seq_len')})")
    train.add_argument(
        "--warmup", type=int, default=run.warmup_steps, help=f"warm-up steps (default: {run.warmup_steps})"
    )
    train.add_argument("--seed", type=int, default=run.seed)
    train.add_argument("--layers", type=int, help=f"(default: {per_task('num_layers')})")
    train.add_argument("--heads", type=int, help=f"(default: {per_task('num_heads')})")
    train.add_argument("--d-model", type=int, help=f"(default: {per_task('d_model')})")
    train.add_argument("--ffn", type=int, help="feed-forward width (default: 4 x d_model)")
    sizes = "; ".join(f"{text} {size}" for text, size in VOCAB_SIZES.items())
    train.add_argument("--vocab-size", type=int, help=f"(default: by text: {sizes}; the toy tasks: grammar's)")
    train.add_argument("--max-len", type=int, default=defaults.max_len, help="longest input the model accepts")
    train.add_argument("--positional", choices=POSITIONAL_KINDS, default=defaults.positional)
    train.add_argument("--layer-norm", choices=LAYER_NORM_PLACEMENTS, default=defaults.layer_norm)
    train.add_argument("--dropout", type=float, default=defaults.dropout, help="dropout rate while training")
    train.add_argument(
        "--tie-embeddings",
        action=argparse.BooleanOptionalAction,
        help=f"output head reads the embedding table (default: {per_task('tie_embeddings')})",
    )
    train.add_argument(
        "--mask-rate",
        type=float,
        default=run.mask_rate,
        help=f"share of positions mlm hides (default: {run.mask_rate})",
    )
    train.add_argument(
        "--steps-per-chunk", type=int, default=run.steps_per_chunk, help="steps fused into one compiled call"
    )
    train.add_argument("--eval-every", type=int, default=run.eval_every, help="steps between held-out evaluations")
    add_process_arguments(train)
    train.set_defaults(run=run_train)
    return train


def add_process_arguments(train: argparse.ArgumentParser) -> None:
    """The flags of a training over several processes (JAX's names for the ones every host gives)."""
    from explorer.training.distributed import Cluster

    group = train.add_argument_group(
        "training over several processes",
        "--batch-size is the global batch, split over every process's devices; process 0 evaluates and saves.",
    )
    group.add_argument(
        "--processes", type=int, help="start N processes on this machine (to try it out; one host's cores are shared)"
    )
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same on every host")
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in the run, the same on every host")
    group.add_argument("--process-id", type=int, metavar="I", help="this process: 0 .. N-1 (0 hosts the coordinator)")
    group.add_argument(
        "--init-timeout",
        type=int,
        default=Cluster.init_timeout,
        metavar="SECONDS",
        help=f"how long to wait for every process to connect (default: {Cluster.init_timeout})",
    )
    group.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=Cluster.heartbeat_timeout,
        metavar="SECONDS",
        help=f"silence after which a process counts as dead (default: {Cluster.heartbeat_timeout})",
    )
    group.add_argument("--native-log", help=argparse.SUPPRESS)  # set by the supervisor: this process is a worker


class _ProgressBar:
    """tqdm's bar on stderr, fed from the trainer's status after every chunk; silent when stderr is not a
    terminal (tqdm's ``disable=None``), so logs and ``--json`` output stay clean."""

    def __init__(self, total: int):
        self._bar = tqdm(total=total, unit="step", dynamic_ncols=True, disable=None, desc="compiling")

    def __call__(self, status) -> None:
        self._bar.update(status.step - self._bar.n)
        if status.loss:
            self._bar.set_description("training")
            self._bar.set_postfix(loss=f"{status.loss[-1]:.4f}", refresh=False)

    def close(self) -> None:
        self._bar.close()


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig, str | None]:
    """The model and training configs ``args`` ask for, and the uploaded text (None for a named text): the
    per-task defaults (``default_model_config``, ``default_train_config``) with every flag given applied."""
    from explorer.text.texts import UPLOADED, text_available
    from explorer.training.config import default_model_config, default_train_config
    from explorer.training.tasks import TEXT_TASKS

    changes = {field: getattr(args, flag) for field, flag in TRAIN_FLAGS.items()}
    if args.seq_len:
        changes["seq_len"] = args.seq_len
    text = None
    if args.text in TEXT_NAMES:
        changes["text"] = args.text
        problem = text_available(args.text) if args.task in TEXT_TASKS else None
        if problem:
            raise ValueError(problem)
    else:
        if args.task not in TEXT_TASKS:
            raise ValueError("--text trains the text tasks (mlm, causal); the toy tasks make their own data.")
        text = Path(args.text).read_text(encoding="utf-8", errors="replace")
        changes["text"] = UPLOADED
    given = {field: getattr(args, flag) for field, flag in MODEL_FLAGS.items()}
    model_config = default_model_config(
        args.task, changes["text"], **{field: value for field, value in given.items() if value is not None}
    )
    return model_config, default_train_config(args.task, **changes), text


def run_train(args: argparse.Namespace) -> int:
    """Trains as ``args`` say, saves the checkpoint atomically, prints the summary (over several processes:
    supervises them, or is one of them)."""
    from explorer.cli import processes

    if args.native_log:  # a worker, started by the branch below
        return processes.run_worker(args, lambda cluster: _train(args, cluster))
    if args.processes is not None or args.coordinator or args.num_processes is not None or args.process_id is not None:
        return processes.launch(args, check=lambda devices: _check_flags(args, devices))
    return _train(args, None)


def _check_flags(args: argparse.Namespace, devices: int | None) -> None:
    """Raises a readable ``ValueError`` for flags that would fail in every process (checked before any starts)."""
    _, train_config, _ = configs_from_args(args)
    if devices is not None and train_config.batch_size % devices:
        raise ValueError(
            f"The batch of {train_config.batch_size} does not split evenly over {devices} devices; choose a "
            f"--batch-size that is a multiple of {devices} (or set EXPLORER_CPU_DEVICES per process)."
        )


def _train(args: argparse.Namespace, cluster: Cluster | None) -> int:
    import jax

    from explorer.cli.processes import WORKER_FLAGS
    from explorer.model import checkpoint
    from explorer.training.runner import Trainer
    from explorer.training.status import DIVERGED

    model_config, train_config, text = configs_from_args(args)
    lead = cluster is None or cluster.process_id == 0  # evaluates, reports and saves
    trainer = Trainer(model_config, train_config, text=text, evaluate=lead)
    bar = _ProgressBar(train_config.steps) if lead else None
    try:
        status = trainer.run(bar)
    except Exception as error:
        if cluster is None:
            raise
        # A collective whose peer has gone fails here (gloo: "connection closed by peer").
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        step = trainer.status().step
        raise RuntimeError(f"stopped at step {step}: the run lost another process ({detail})") from None
    finally:
        if bar is not None:
            bar.close()
    if not lead:
        loss = f", last loss {status.loss[-1]:.4f}" if status.loss else ""
        print(
            f"{cluster.label}: {status.state} after {status.step} steps{loss}; process 0 evaluates and saves",
            file=sys.stderr,
        )
        return EXIT_DIVERGED if status.state == DIVERGED else 0
    summary = status.summary()
    summary.update(processes=jax.process_count(), devices=trainer.devices)
    bundle = trainer.bundle()
    info = dict(bundle.info)
    given = sys.argv[1 : len(sys.argv) - (WORKER_FLAGS if args.native_log else 0)]  # as the user typed it
    info.update(
        steps_per_second=summary["steps_per_second"],
        eval=summary["eval"][-1:] if summary["eval"] else [],
        attention_closeness=summary["attention_closeness"],
        processes=summary["processes"],
        devices=summary["devices"],
        command=" ".join(["python -m explorer", *given]) if sys.argv[0].endswith("__main__.py") else None,
    )
    path = checkpoint.save(bundle, args.out, info=info)
    summary["checkpoint"] = str(path)
    summary["checkpoint_bytes"] = path.stat().st_size
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if status.state == DIVERGED:
        print(f"warning: {status.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def _print_summary(summary: dict) -> None:
    print(f"task {summary['task']}: {summary['state']} after {summary['steps']} steps ({summary['message']})")
    if summary["final_train_loss"] is not None:
        print(f"final train loss {summary['final_train_loss']:.4f}, accuracy {summary['final_train_accuracy']:.3f}")
    for row in summary["eval"]:
        print(f"  eval @ step {row['step']:>6}: loss {row['loss']:.4f}  accuracy {row['accuracy']:.3f}")
    processes = f" in {summary['processes']} processes" if summary["processes"] > 1 else ""
    print(
        f"{summary['steps_per_second']} steps/s, {summary['elapsed_seconds']} s training "
        f"(batches split over {summary['devices']} devices{processes})"
    )
    if summary["attention_closeness"] is not None:
        print("attention closeness to the ideal pattern (rows: layers, columns: heads):")
        for layer, row in enumerate(summary["attention_closeness"]):
            print(f"  layer {layer + 1}: " + "  ".join(f"{v:.2f}" for v in row))
    print(f"saved {summary['checkpoint']} ({summary['checkpoint_bytes'] / 1024:.0f} KB)")
