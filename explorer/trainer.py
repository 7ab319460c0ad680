"""Live training: a thread-safe ``Trainer`` that runs fused training chunks and keeps what a UI replays.

The trainer knows nothing about any UI. It runs either in the caller's thread (``run``, used by the CLI,
which passes a callback for its progress bar) or in a worker thread (``start``; the app's Train page).
Everything a reader may look at -- loss history, evaluations, telemetry, snapshots -- is changed only
under ``self._lock`` and handed out as immutable copies (``status()``, ``snapshot()``), so a page
drawing twice a second never sees half an update and never blocks training for longer than a copy.

Snapshots hold the parameters at chosen steps (a toy model's parameters are ~0.5 MB, so dozens fit in
memory) together with what the Train page replays: attention of a probe input, its predictions and a
2-D view of the embeddings.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from explorer.analysis import pca, softmax
from explorer.bundle import ModelBundle
from explorer.config import ModelConfig
from explorer.tasks import (
    TOY_TASKS,
    TaskSpec,
    attention_closeness,
    check_stream,
    ideal_attention,
    toy_source,
)
from explorer.texts import TrainingText, named_text, text_vocab, token_streams, unigram_loss, uploaded_text
from explorer.tokenizer import DEFAULT_ENCODING, display_text
from explorer.training import (
    TrainConfig,
    TrainState,
    compile_functions,
    init_state,
    parameter_groups,
    state_params,
)
from explorer.vocab import MASK, NUM_SPECIAL, Vocab

PROBE_TEXT = "Mary met John at the park. She gave him a book."
MAX_SNAPSHOTS = 64  # at ~0.5 MB of parameters each, a bounded ~32 MB per trainer

# Trainer states, as shown to users.
IDLE, RUNNING, STOPPED, FINISHED, DIVERGED, FAILED = "idle", "running", "stopped", "finished", "diverged", "failed"


@dataclass(frozen=True)
class Probe:
    """A fixed input whose attention and predictions are recorded at every snapshot."""

    inputs: np.ndarray  # [T] model ids fed to the encoder
    labels: tuple[str, ...]  # [T] display text of each input token
    positions: np.ndarray  # [P] positions whose prediction is shown
    targets: np.ndarray  # [P] the right answers there
    ideal: np.ndarray | None  # [T, T] ideal attention (toy tasks) or None


@dataclass(frozen=True)
class Snapshot:
    """The model at one step, and what the Train page replays from it."""

    step: int
    params: hk.Params  # device arrays (immutable: safe to share between threads)
    attention: np.ndarray  # [L, H, T, T] attention weights on the probe
    predicted: tuple[str, ...]  # [P] predicted token at each probe position
    confidence: np.ndarray  # [P] probability of that prediction
    embedding_points: np.ndarray  # [N, 2] tracked token embeddings, principal-component plane
    embedding_labels: tuple[str, ...]  # [N]
    closeness: np.ndarray | None  # [L, H] probe attention vs the ideal (toy tasks)


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
    eval_steps: tuple[int, ...]
    eval_loss: tuple[float, ...]
    eval_accuracy: tuple[float, ...]
    groups: tuple[str, ...]  # parameter groups of the telemetry below
    group_grad_norms: np.ndarray  # [S, G] per step
    group_update_ratios: np.ndarray  # [S, G] per step
    closeness: np.ndarray | None  # [L, H] latest, on a held-out batch; toy tasks only
    steps_per_second: float
    elapsed_seconds: float
    snapshot_steps: tuple[int, ...]

    @property
    def progress(self) -> float:
        return min(1.0, self.step / max(self.total_steps, 1))

    @property
    def active(self) -> bool:
        return self.state == RUNNING

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


_LIVE_TRAINERS: weakref.WeakSet[Trainer] = weakref.WeakSet()


@atexit.register
def _stop_all_trainers() -> None:
    """Lets every worker finish its chunk before the interpreter exits: killing a thread in the middle of
    a JAX computation aborts the process instead of letting it exit cleanly."""
    for trainer in list(_LIVE_TRAINERS):
        trainer.stop(timeout=10)


class Trainer:
    """Trains one model on one task; start/stop/resume/reset from any thread.

    Args:
      model_config: the architecture; its ``vocab_size`` decides the vocabulary size.
      train_config: task, steps, optimiser settings.
      text: what the text tasks train on: a ``TrainingText``, a user's text (str), or None for
        ``train_config.text`` (a named text). The closed vocabulary is built from its training part.
      encoding: tiktoken encoding of the vocabulary.

      snapshot_at: extra steps to evaluate and snapshot at (e.g. densely early on, where attention forms).

    Evaluations and snapshots happen together: at step 0, every ``train_config.eval_every`` steps, at
    each ``snapshot_at`` step, and where training ends -- each at the end of the chunk that reaches it.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        text: TrainingText | str | None = None,
        encoding: str = DEFAULT_ENCODING,
        snapshot_at: tuple[int, ...] = (),
    ):
        self.train_config = train_config
        self.spec: TaskSpec = train_config.task_spec
        if self.spec.seq_len > model_config.max_len:
            raise ValueError(
                f"seq_len {self.spec.seq_len} exceeds the model's max_len {model_config.max_len}; "
                f"use a shorter sequence length."
            )
        if isinstance(text, str):
            text = uploaded_text(text)
        elif text is None:
            # The toy tasks make their own sequences; they only borrow the small grammar's vocabulary.
            text = named_text(train_config.text if self.spec.is_text else "grammar")
        self.text: TrainingText = text
        self.text_label = text.label
        self.vocab: Vocab = text_vocab(text, model_config.vocab_size, encoding)
        self.model_config = model_config
        if self.spec.is_text:
            train, held_out = token_streams(text, self.vocab)
            check_stream(train, self.spec.seq_len, "training part")
            check_stream(held_out, self.spec.seq_len, "held-out part")
            self.unigram_loss: float | None = unigram_loss(train, held_out, self.vocab.size)
        else:
            train = held_out = toy_source(self.vocab, self.spec.num_symbols)
            self.unigram_loss = None
        self._train_source = jax.device_put(train)
        self._eval_source = jax.device_put(held_out)
        self._functions = compile_functions(model_config, train_config)
        self.probe = self._make_probe(held_out)
        self.groups = parameter_groups(model_config)
        self.snapshot_at = tuple(sorted(set(int(step) for step in snapshot_at)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_locked()

    # ----------------------------------------------------------------------------------------------
    # Control

    def start(self) -> bool:
        """Starts (or resumes) training in a worker thread; False if it is running or cannot continue."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            if self._state_name in (FINISHED, DIVERGED, FAILED):
                return False
            self._stop.clear()
            self._state_name = RUNNING
            self._message = "Compiling the training step…" if self._step == 0 else "Training…"
            self._thread = threading.Thread(target=self._worker, name="explorer-trainer", daemon=True)
            _LIVE_TRAINERS.add(self)
            self._thread.start()
            return True

    resume = start

    def stop(self, timeout: float | None = 30.0) -> None:
        """Asks the worker to stop after its current chunk and waits for it."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def reset(self) -> None:
        """Stops, then forgets all progress: fresh parameters from the same seed."""
        self.stop()
        with self._lock:
            self._reset_locked()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the worker to end; True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def run(self, callback: Callable[[TrainerStatus], None] | None = None) -> TrainerStatus:
        """Trains in the calling thread until done, stopped or diverged; ``callback`` after every chunk."""
        with self._lock:
            if self._state_name in (FINISHED, DIVERGED, FAILED):
                return self._status_locked()
            self._stop.clear()
            self._state_name = RUNNING
        self._loop(callback)
        return self.status()

    # ----------------------------------------------------------------------------------------------
    # Reading

    def status(self) -> TrainerStatus:
        with self._lock:
            return self._status_locked()

    def snapshot_steps(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._snapshots)

    def snapshot(self, step: int | None = None) -> Snapshot | None:
        """The snapshot at ``step`` (or the nearest earlier one; the latest if None)."""
        with self._lock:
            if not self._snapshots:
                return None
            steps = sorted(self._snapshots)
            if step is None:
                return self._snapshots[steps[-1]]
            earlier = [s for s in steps if s <= step]
            return self._snapshots[earlier[-1] if earlier else steps[0]]

    def bundle(self, step: int | None = None) -> ModelBundle:
        """The trained model as an immutable bundle (the current parameters, or a snapshot's)."""
        with self._lock:
            status = self._status_locked()
            params = self._params() if step is None else None
        if params is None:
            snap = self.snapshot(step)
            params, at = (snap.params, snap.step) if snap else (self._params(), status.step)
        else:
            at = status.step
        info = {
            "steps": int(at),
            "train_config": self.train_config.to_dict(),
            "text": self.text_label if self.spec.is_text else None,
            "final_train_loss": status.loss[-1] if status.loss else None,
            "final_eval_loss": status.eval_loss[-1] if status.eval_loss else None,
            "final_eval_accuracy": status.eval_accuracy[-1] if status.eval_accuracy else None,
        }
        on_text = f" on the {self.text_label}" if self.spec.is_text else ""
        return ModelBundle(
            config=self.model_config,
            params=jax.device_put(params),
            vocab=self.vocab,
            source=f"trained here: {self.train_config.task}{on_text}, step {at}",
            task=self.train_config.task,
            info=info,
        )

    def token_label(self, model_id: int) -> str:
        return display_text(self.vocab.token_text(model_id))

    # ----------------------------------------------------------------------------------------------
    # Internals

    def _params(self) -> hk.Params:
        return state_params(self.model_config, self._state)

    def _reset_locked(self) -> None:
        self._state: TrainState = init_state(self.model_config, self.train_config)
        self._state_name = IDLE
        self._message = "Ready to train."
        self._step = 0
        self._history: dict[str, list] = {k: [] for k in ("step", "loss", "accuracy", "grad_norm", "ggn", "gur")}
        self._evals: dict[str, list] = {"step": [], "loss": [], "accuracy": []}
        self._snapshots: dict[int, Snapshot] = {}
        self._closeness: np.ndarray | None = None
        self._train_seconds = 0.0  # time in chunks after the first (compile) one
        self._train_steps_timed = 0
        self._elapsed = 0.0
        self._needs_initial = True
        self._compiled = getattr(self, "_compiled", False)

    def _status_locked(self) -> TrainerStatus:
        h, e = self._history, self._evals
        groups = len(self.groups)
        return TrainerStatus(
            state=self._state_name,
            message=self._message,
            step=self._step,
            total_steps=self.train_config.steps,
            task=self.train_config.task,
            steps=tuple(h["step"]),
            loss=tuple(h["loss"]),
            accuracy=tuple(h["accuracy"]),
            grad_norm=tuple(h["grad_norm"]),
            eval_steps=tuple(e["step"]),
            eval_loss=tuple(e["loss"]),
            eval_accuracy=tuple(e["accuracy"]),
            groups=self.groups,
            group_grad_norms=np.array(h["ggn"], np.float32).reshape(-1, groups),
            group_update_ratios=np.array(h["gur"], np.float32).reshape(-1, groups),
            closeness=self._closeness,
            steps_per_second=(self._train_steps_timed / self._train_seconds) if self._train_seconds > 0 else 0.0,
            elapsed_seconds=self._elapsed,
            snapshot_steps=tuple(sorted(self._snapshots)),
        )

    def _worker(self) -> None:
        try:
            self._loop(None)
        except Exception as error:  # noqa: BLE001 - a worker must report, not vanish
            with self._lock:
                self._state_name = FAILED
                self._message = f"Training failed: {type(error).__name__}: {error}"

    def _loop(self, callback: Callable[[TrainerStatus], None] | None) -> None:
        config = self.train_config
        chunk = config.steps_per_chunk
        if self._needs_initial:
            self._inspect(self._params(), 0)
            self._needs_initial = False
        first_chunk = not self._compiled
        self._compiled = True
        while not self._stop.is_set():
            with self._lock:
                state, step = self._state, self._step
            remaining = config.steps - step
            if remaining <= 0:
                break
            active = jnp.arange(chunk) < remaining  # [K] steps past the end do nothing
            started = time.perf_counter()
            new_state, metrics = self._functions.chunk(state, self._train_source, active)
            metrics = jax.device_get(metrics)  # one blocking read per chunk
            diverged = bool(new_state.diverged)
            seconds = time.perf_counter() - started
            ran = np.arange(chunk) < remaining  # [K]
            applied = np.asarray(metrics["applied"])  # [K]
            failed = ran & ~applied  # [K] non-finite steps (only possible once diverged)
            new_step = int(new_state.step)
            with self._lock:
                self._state = new_state
                self._step = new_step
                self._elapsed += seconds
                if first_chunk:
                    first_chunk = False  # its time is mostly compiling: steps/s counts later chunks
                else:
                    self._train_seconds += seconds
                    self._train_steps_timed += int(applied.sum())
                h = self._history
                for i in np.flatnonzero(ran):
                    # A failed step is recorded once, at the step it would have been, then nothing after.
                    h["step"].append(int(metrics["step"][i]) + int(not applied[i]))
                    h["loss"].append(float(metrics["loss"][i]))
                    h["accuracy"].append(float(metrics["accuracy"][i]))
                    h["grad_norm"].append(float(metrics["grad_norm"][i]))
                    h["ggn"].extend(np.asarray(metrics["group_grad_norms"][i], float).tolist())
                    h["gur"].extend(np.asarray(metrics["group_update_ratios"][i], float).tolist())
                    if not applied[i]:
                        break
                if diverged:
                    bad = float(metrics["loss"][int(np.argmax(failed))]) if failed.any() else math.nan
                    what = f"the loss became {bad}" if not math.isfinite(bad) else "the gradients or weights overflowed"
                    self._state_name = DIVERGED
                    self._message = (
                        f"Training blew up at step {new_step + 1} ({what}) and stopped. The learning rate "
                        f"({config.learning_rate:g}) is probably too high. The parameters kept are those of "
                        f"step {new_step}, the last finite ones."
                    )
                else:
                    self._message = "Training…"
            done = new_step >= config.steps
            chosen = any(step < at <= new_step for at in self.snapshot_at)
            if diverged or done or chosen or self._due(step, new_step, config.eval_every):
                self._inspect(state_params(self.model_config, new_state), new_step)
            if callback is not None:
                callback(self.status())
            if diverged:
                return
        with self._lock:
            step, inspected = self._step, self._evals["step"][-1] if self._evals["step"] else None
        if step != inspected:  # stopped between evaluations: evaluate and snapshot where it stopped
            self._inspect(self._params(), step)
        with self._lock:
            if self._step >= config.steps:
                self._state_name = FINISHED
                self._message = f"Finished {self._step} steps."
            else:
                self._state_name = STOPPED
                self._message = f"Stopped at step {self._step} of {config.steps}; resume to continue."
        if callback is not None:
            callback(self.status())

    @staticmethod
    def _due(before: int, after: int, every: int) -> bool:
        return after // every > before // every

    def _make_probe(self, held_out: np.ndarray) -> Probe:
        spec = self.spec
        if spec.is_text:
            if self.text.name != "uploaded":
                inputs, _ = self.vocab.to_model_ids(self.vocab.tokenizer().encode(PROBE_TEXT, spec.seq_len).ids)
            else:
                inputs = np.asarray(held_out[: min(24, spec.seq_len)], np.int32)
            inputs = inputs[: spec.seq_len]
            if spec.task == "causal":
                positions = np.arange(len(inputs) - 1)
                targets = inputs[1:]
            else:
                pronouns = {" She", " she", " he", " He", " him", " her", " his"}
                pieces = [self.vocab.token_text(int(i)) for i in inputs]
                positions = np.array(
                    [i for i, p in enumerate(pieces) if p in pronouns] or list(range(1, len(inputs), 5))
                )
                targets = inputs[positions]
                inputs = inputs.copy()
                inputs[positions] = MASK
            ideal = None
        else:
            rng = np.random.default_rng(1234)
            source = toy_source(self.vocab, spec.num_symbols)
            inputs = source[rng.integers(0, len(source), spec.seq_len)]
            positions = np.arange(spec.seq_len)
            if spec.task == "reverse":
                targets = inputs[::-1]
            elif spec.task == "sort":
                targets = np.sort(inputs)
            else:
                targets = np.roll(inputs, spec.copy_offset)
            ideal = ideal_attention(spec, inputs[None])[0]
        labels = tuple(self.token_label(int(i)) for i in inputs)
        return Probe(
            np.asarray(inputs, np.int32), labels, np.asarray(positions, np.int32), np.asarray(targets, np.int32), ideal
        )

    def _tracked_tokens(self) -> np.ndarray:
        if self.spec.task in TOY_TASKS:
            return toy_source(self.vocab, self.spec.num_symbols)
        return np.arange(NUM_SPECIAL, min(self.vocab.size, NUM_SPECIAL + 60))  # [N]

    def _inspect(self, params: hk.Params, step: int) -> None:
        """Evaluates on held-out data and records a snapshot of ``params`` at ``step``."""
        probe = self.probe
        out = jax.device_get(
            self._functions.inspect(params, self._eval_source, probe.inputs[None], probe.positions[None])
        )
        logits = out["probe_logits"]  # [P, V]
        probs = softmax(logits)  # [P, V]
        predicted_ids = probs.argmax(-1)  # [P]
        closeness = probe_closeness = None
        if probe.ideal is not None:
            # Per-head closeness to the ideal pattern, averaged over a whole held-out batch.
            ideal = ideal_attention(self.spec, out["eval_inputs"])  # [B, T, T]
            closeness = attention_closeness(out["eval_attention"], ideal)  # [L, H]
            probe_closeness = attention_closeness(out["probe_attention"][:, None], probe.ideal[None])  # [L, H]
        tracked = self._tracked_tokens()
        table = np.asarray(jax.device_get(params["encoder/token_embedding"]["embeddings"]))[tracked]  # [N, D]
        snapshot = Snapshot(
            step=step,
            params=params,
            attention=np.asarray(out["probe_attention"]),
            predicted=tuple(self.token_label(int(i)) for i in predicted_ids),
            confidence=probs[np.arange(len(predicted_ids)), predicted_ids].astype(np.float32),
            embedding_points=pca(table, components=2).coords.astype(np.float32),
            embedding_labels=tuple(self.token_label(int(i)) for i in tracked),
            closeness=probe_closeness,
        )
        with self._lock:
            self._evals["step"].append(step)
            self._evals["loss"].append(float(out["loss"]))
            self._evals["accuracy"].append(float(out["accuracy"]))
            if closeness is not None:
                self._closeness = closeness
            self._snapshots[step] = snapshot
            if len(self._snapshots) > MAX_SNAPSHOTS:
                # Thin the middle: keep step 0, the latest, and every other one in between.
                steps = sorted(self._snapshots)
                for old in steps[1:-1:2]:
                    del self._snapshots[old]
