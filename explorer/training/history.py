"""What a run has recorded: every step's metrics, the evaluations, the closeness timeline, the snapshots,
and its speed.

``RunHistory`` is the ``Trainer``'s bookkeeping, kept apart from the loop that feeds it. It is not
thread-safe by itself: the trainer changes and reads it only under its own lock, and hands out
``status_fields()``, immutable copies for ``TrainerStatus``.

Glossary of shapes: K steps in one call, G parameter groups, E evaluations with a closeness, L layers,
H heads.
"""

from __future__ import annotations

import numpy as np

from explorer.training.snapshots import Snapshot

MAX_SNAPSHOTS = 64  # at ~0.5 MB of parameters each, a bounded ~32 MB per trainer
STEP_METRICS = ("step", "loss", "accuracy", "grad_norm", "learning_rate", "ggn", "gur")


class RunHistory:
    """A run's records from step 0 (a reset starts a new one)."""

    def __init__(self, groups: int):
        self.groups = groups
        self.steps: dict[str, list] = {name: [] for name in STEP_METRICS}
        self.evals: dict[str, list] = {"step": [], "loss": [], "accuracy": []}
        self.closeness_history: list[tuple[int, np.ndarray]] = []
        self.closeness: np.ndarray | None = None  # [L, H] latest
        self.snapshots: dict[int, Snapshot] = {}
        self.rate = 0.0  # steps per second, smoothed over the calls that did not compile
        self.elapsed = 0.0

    def add_call(self, metrics: dict, active: np.ndarray, seconds: float, compiling: bool) -> None:
        """One compiled call's metrics (``[K]`` each) and time; ``active`` marks the steps it was asked to
        make. A failed (non-finite) step is recorded once, at the step it would have been, then nothing."""
        applied = np.asarray(metrics["applied"])  # [K]
        self.elapsed += seconds
        if not compiling:  # a compiling call's time is mostly the compile: steps/s counts the others
            rate = int(applied.sum()) / max(seconds, 1e-9)
            self.rate = rate if self.rate == 0.0 else 0.7 * self.rate + 0.3 * rate
        h = self.steps
        for i in np.flatnonzero(active):
            h["step"].append(int(metrics["step"][i]) + int(not applied[i]))
            h["loss"].append(float(metrics["loss"][i]))
            h["accuracy"].append(float(metrics["accuracy"][i]))
            h["grad_norm"].append(float(metrics["grad_norm"][i]))
            h["learning_rate"].append(float(metrics["learning_rate"][i]))
            h["ggn"].extend(np.asarray(metrics["group_grad_norms"][i], float).tolist())
            h["gur"].extend(np.asarray(metrics["group_update_ratios"][i], float).tolist())
            if not applied[i]:
                break

    def add_evaluation(
        self, step: int, loss: float, accuracy: float, closeness: np.ndarray | None, snapshot: Snapshot
    ) -> None:
        """A held-out evaluation at ``step`` and the snapshot taken with it (at most ``MAX_SNAPSHOTS`` kept)."""
        self.evals["step"].append(step)
        self.evals["loss"].append(float(loss))
        self.evals["accuracy"].append(float(accuracy))
        if closeness is not None:
            self.closeness = closeness
            self.closeness_history.append((step, closeness))
        self.snapshots[step] = snapshot
        if len(self.snapshots) > MAX_SNAPSHOTS:
            # Thin the middle: keep step 0, the latest, and every other one in between.
            steps = sorted(self.snapshots)
            for old in steps[1:-1:2]:
                del self.snapshots[old]

    @property
    def last_evaluated(self) -> int | None:
        return self.evals["step"][-1] if self.evals["step"] else None

    def snapshot(self, step: int | None = None) -> Snapshot | None:
        """The snapshot at ``step`` (or the nearest earlier one; the latest if None)."""
        if not self.snapshots:
            return None
        steps = sorted(self.snapshots)
        if step is None:
            return self.snapshots[steps[-1]]
        earlier = [s for s in steps if s <= step]
        return self.snapshots[earlier[-1] if earlier else steps[0]]

    def status_fields(self) -> dict:
        """Copies of the records, as ``TrainerStatus``'s fields of the same names."""
        h, e = self.steps, self.evals
        closeness_history = None
        if self.closeness_history:
            closeness_history = np.stack([c for _, c in self.closeness_history])  # [E, L, H]
        return dict(
            steps=tuple(h["step"]),
            loss=tuple(h["loss"]),
            accuracy=tuple(h["accuracy"]),
            grad_norm=tuple(h["grad_norm"]),
            learning_rate=tuple(h["learning_rate"]),
            eval_steps=tuple(e["step"]),
            eval_loss=tuple(e["loss"]),
            eval_accuracy=tuple(e["accuracy"]),
            group_grad_norms=np.array(h["ggn"], np.float32).reshape(-1, self.groups),  # [S, G]
            group_update_ratios=np.array(h["gur"], np.float32).reshape(-1, self.groups),  # [S, G]
            closeness=self.closeness,
            closeness_steps=tuple(s for s, _ in self.closeness_history),
            closeness_history=closeness_history,
            steps_per_second=self.rate,
            elapsed_seconds=self.elapsed,
            snapshot_steps=tuple(sorted(self.snapshots)),
        )
