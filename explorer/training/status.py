"""What a trainer reports: its state names, ``TrainerStatus`` (an immutable copy of its progress that any
thread or process can read while training goes on) and ``RunInfo`` (what does not change during a run)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.model.config import ModelConfig
from explorer.training.config import TrainConfig
from explorer.training.snapshots import Probe
from explorer.training.tasks import TaskSpec

# Trainer states, as shown to users. STOPPED is a pause: Play continues from there.
IDLE, RUNNING, STOPPED, FINISHED, DIVERGED, FAILED = "idle", "running", "stopped", "finished", "diverged", "failed"
ENDED = (FINISHED, DIVERGED, FAILED)  # no more steps without a reset


@dataclass(frozen=True)
class TrainerStatus:
    """An immutable copy of the trainer's progress, safe to read from any thread."""

    state: str
    message: str
    step: int
    total_steps: int
    task: str
    steps: tuple[int, ...]  # per training step
    loss: tuple[float, ...]
    accuracy: tuple[float, ...]
    grad_norm: tuple[float, ...]
    learning_rate: tuple[float, ...]  # the rate each step applied (the schedule at the peak then in effect)
    eval_steps: tuple[int, ...]
    eval_loss: tuple[float, ...]
    eval_accuracy: tuple[float, ...]
    groups: tuple[str, ...]  # parameter groups of the telemetry below
    group_grad_norms: np.ndarray  # [S, G] per step
    group_update_ratios: np.ndarray  # [S, G] per step
    closeness: np.ndarray | None  # [L, H] latest, on a held-out batch; toy tasks only
    closeness_steps: tuple[int, ...]  # the evaluations that measured closeness
    closeness_history: np.ndarray | None  # [E, L, H] closeness at each of those steps; toy tasks only
    steps_per_second: float
    elapsed_seconds: float
    snapshot_steps: tuple[int, ...]
    epoch: float | None = None  # passes over the training text so far (text tasks)
    compiling_seconds: float | None = None  # while a program compiles: for how long so far
    peak_learning_rate: float = 0.0  # the peak the next step's schedule uses

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(self.total_steps, 1))

    def summary(self) -> dict:
        """JSON-ready facts about the run (the CLI prints this)."""
        last = lambda xs: float(xs[-1]) if xs else None  # noqa: E731
        return {
            "task": self.task,
            "state": self.state,
            "message": self.message,
            "steps": self.step,
            "total_steps": self.total_steps,
            "final_train_loss": last(self.loss),
            "final_train_accuracy": last(self.accuracy),
            "eval": [
                {"step": s, "loss": float(loss), "accuracy": float(a)}
                for s, loss, a in zip(self.eval_steps, self.eval_loss, self.eval_accuracy, strict=True)
            ],
            "loss_history": [[int(s), float(loss)] for s, loss in zip(self.steps, self.loss, strict=True)],
            "steps_per_second": round(self.steps_per_second, 2),
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "attention_closeness": None if self.closeness is None else np.round(self.closeness, 4).tolist(),
        }


@dataclass(frozen=True)
class RunInfo:
    """What does not change during a run: its configs, probe and reference numbers."""

    model_config: ModelConfig
    train_config: TrainConfig
    spec: TaskSpec
    probe: Probe
    text_label: str | None  # what the text tasks train on; None for the toy tasks
    unigram_loss: float | None  # held-out loss of guessing token frequencies (text tasks)
