"""Running a training: a thread-safe ``Trainer`` with Play/Pause/Step/Reset, a live learning rate, and
what a UI replays.

The trainer knows nothing about any UI. It runs either in the caller's thread (``run``, used by the CLI,
which passes a callback for its progress bar) or in a worker thread (``start``/``step``; the Train page).
Everything a reader may look at -- loss history, evaluations, telemetry, snapshots -- is changed only
under ``self._lock`` and handed out as immutable copies (``status()``, ``snapshot()``, ``info()``), so a
page drawing twice a second never sees half an update and never blocks training for longer than a copy.
What a run records is kept by a ``RunHistory`` (``explorer.training.history``); the trainer runs the loop.
Its public methods take and return plain, picklable values, so a trainer can as well live in another
process behind a proxy that forwards method calls.

Live calls are sized by time (``LIVE_CALL_SECONDS`` of work each), so Pause takes effect within a call;
the CLI's ``run`` uses whole chunks.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import weakref
from collections.abc import Callable

import haiku as hk
import jax
import numpy as np

from explorer.model.bundle import ModelBundle
from explorer.model.config import ModelConfig
from explorer.text.texts import (
    TOY_TASK_TEXT,
    TrainingText,
    named_text,
    text_vocab,
    token_streams,
    unigram_loss,
    uploaded_text,
)
from explorer.text.tokenizer import DEFAULT_ENCODING
from explorer.text.vocab import Vocab
from explorer.training.config import LIVE_CALL_SECONDS, TrainConfig
from explorer.training.history import RunHistory
from explorer.training.parallel import compile_functions, eval_key
from explorer.training.snapshots import Snapshot, make_probe, take_snapshot
from explorer.training.status import (
    DIVERGED,
    ENDED,
    FAILED,
    FINISHED,
    IDLE,
    RUNNING,
    STOPPED,
    RunInfo,
    TrainerStatus,
)
from explorer.training.step import TrainState, init_state, parameter_groups, set_learning_rate, state_params
from explorer.training.tasks import TaskSpec, check_stream, toy_source

_LIVE_TRAINERS: weakref.WeakSet[Trainer] = weakref.WeakSet()


@atexit.register
def _stop_all_trainers() -> None:
    """Lets every worker finish its call before the interpreter exits: killing a thread in the middle of
    a JAX computation aborts the process instead of letting it exit cleanly."""
    for trainer in list(_LIVE_TRAINERS):
        trainer.stop(timeout=10)


class Trainer:
    """Trains one model on one task; play/pause/step/reset from any thread.

    Args:
      model_config: the architecture; its ``vocab_size`` decides the vocabulary size.
      train_config: task, steps, optimiser settings.
      text: what the text tasks train on: a ``TrainingText``, a user's text (str), or None for
        ``train_config.text`` (a named text). The closed vocabulary is built from its training part.
      encoding: tiktoken encoding of the vocabulary.
      snapshot_at: extra steps to evaluate and snapshot at (e.g. densely early on, where attention forms).
      evaluate: False skips every evaluation and snapshot: in a run over several processes
        (``explorer.training.distributed``) process 0 evaluates and the others only train.

    Evaluations and snapshots happen together: at step 0, every ``train_config.eval_every`` steps, at
    each ``snapshot_at`` step, and where training ends or pauses -- each at the end of the call that
    reaches it. The same seed gives the same initial weights and the same batches, however the steps are
    split into calls: a reset and a rerun reproduce every loss.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        text: TrainingText | str | None = None,
        encoding: str = DEFAULT_ENCODING,
        snapshot_at: tuple[int, ...] = (),
        evaluate: bool = True,
    ):
        self.train_config = train_config
        self._evaluate = evaluate
        self.spec: TaskSpec = train_config.task_spec
        if self.spec.seq_len > model_config.max_len:
            raise ValueError(
                f"seq_len {self.spec.seq_len} exceeds the model's max_len {model_config.max_len}; "
                f"use a shorter sequence length."
            )
        if isinstance(text, str):
            text = uploaded_text(text)
        elif text is None:
            text = named_text(train_config.text if self.spec.is_text else TOY_TASK_TEXT)
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
        self._train_tokens = len(train)
        self._functions = compile_functions(model_config, train_config)
        self.devices = self._functions.devices  # that a step splits its batch over (in every process of a run)
        self._train_source = self._functions.place(train)
        self._eval_source = jax.device_put(held_out)
        self._eval_key = eval_key(train_config.seed)
        self.probe = make_probe(self.spec, self.vocab, held_out, named_text=text.name != "uploaded")
        self.groups = parameter_groups(model_config)
        self.snapshot_at = tuple(sorted(set(int(step) for step in snapshot_at)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_locked()

    # ----------------------------------------------------------------------------------------------
    # Control

    def start(self, max_steps: int | None = None) -> bool:
        """Plays (or resumes) training in a worker thread, for at most ``max_steps`` steps; False if it is
        running or cannot continue."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            if self._state_name in ENDED:
                return False
            self._stop.clear()
            self._state_name = RUNNING
            self._message = "Training…"
            self._thread = threading.Thread(
                target=self._worker, args=(max_steps,), name="explorer-trainer", daemon=True
            )
            _LIVE_TRAINERS.add(self)
            self._thread.start()
            return True

    resume = play = start

    def step(self) -> bool:
        """Exactly one optimiser update, then an evaluation and a snapshot of it (in the worker thread)."""
        return self.start(max_steps=1)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Pauses: asks the worker to stop after its current call and waits for it."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    pause = stop

    def reset(self) -> None:
        """Stops, then forgets all progress: fresh parameters and batches from the same seed."""
        self.stop()
        with self._lock:
            self._reset_locked()

    def set_learning_rate(self, learning_rate: float) -> None:
        """Changes the peak learning rate from the next step on, also while running (no recompile)."""
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0 and math.isfinite(learning_rate)):
            raise ValueError(f"The learning rate must be a positive number, got {learning_rate!r}.")
        with self._lock:
            self._learning_rate = float(learning_rate)

    def compile(self) -> float:
        """Compiles this setup's programs, and runs them once on a throwaway copy of the state (progress is
        unchanged), so that a later Play starts at once; the seconds it took."""
        started = time.perf_counter()
        with self._lock:
            state, params = self._state, self._params()
        # One real step, not none: the first execution of a step has costs of its own (~0.7 s here).
        one = np.arange(self.train_config.steps_per_chunk) < 1
        self._call("chunk", state, self._train_source, one, read=lambda out: jax.device_get(out[1]))
        probe = self.probe
        self._call("inspect", params, self._eval_source, self._eval_key, probe.inputs[None], probe.positions[None])
        return time.perf_counter() - started

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
            if self._state_name in ENDED:
                return self._status_locked()
            self._stop.clear()
            self._state_name = RUNNING
        self._loop(callback, live=False, max_steps=None)
        return self.status()

    # ----------------------------------------------------------------------------------------------
    # Reading

    def status(self) -> TrainerStatus:
        with self._lock:
            return self._status_locked()

    def info(self) -> RunInfo:
        return RunInfo(
            model_config=self.model_config,
            train_config=self.train_config,
            spec=self.spec,
            probe=self.probe,
            text_label=self.text_label if self.spec.is_text else None,
            unigram_loss=self.unigram_loss,
        )

    def snapshot_steps(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self._history.snapshots)

    def snapshot(self, step: int | None = None) -> Snapshot | None:
        """The snapshot at ``step`` (or the nearest earlier one; the latest if None)."""
        with self._lock:
            return self._history.snapshot(step)

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
            "train_config": self.train_config.replace(learning_rate=status.peak_learning_rate).to_dict(),
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

    # ----------------------------------------------------------------------------------------------
    # Internals

    def _params(self) -> hk.Params:
        return state_params(self.model_config, self._state)

    def _reset_locked(self) -> None:
        self._state: TrainState = init_state(self.model_config, self.train_config)
        self._learning_rate = self._state_learning_rate = float(self.train_config.learning_rate)
        self._state_name = IDLE
        self._message = "Ready to train."
        self._step = 0
        self._history = RunHistory(len(self.groups))
        self._compiling_since: float | None = None
        self._steps_per_call = 1  # live: grows to LIVE_CALL_SECONDS of work once a step has been timed
        self._needs_initial = True

    def _status_locked(self) -> TrainerStatus:
        compiling = None if self._compiling_since is None else time.monotonic() - self._compiling_since
        message = self._message
        if compiling is not None:
            message = f"Compiling the training program for these settings… {compiling:.0f} s (once per setup)"
        epoch = None
        if self.spec.is_text:
            epoch = self._step * self.spec.batch_size * self.spec.seq_len / max(self._train_tokens, 1)
        return TrainerStatus(
            state=self._state_name,
            message=message,
            step=self._step,
            total_steps=self.train_config.steps,
            task=self.train_config.task,
            groups=self.groups,
            epoch=epoch,
            **self._history.status_fields(),
            compiling_seconds=compiling,
            peak_learning_rate=self._learning_rate,
        )

    def _worker(self, max_steps: int | None) -> None:
        try:
            self._loop(None, live=True, max_steps=max_steps)
        except Exception as error:  # noqa: BLE001 - a worker must report, not vanish
            with self._lock:
                self._compiling_since = None
                self._state_name = FAILED
                self._message = f"Training failed: {type(error).__name__}: {error}"

    def _call(self, name: str, *args, read: Callable = jax.device_get):
        """Calls one of the compiled functions and ``read``s its result to the host (the one blocking read
        per call), marking the time it compiles (its first call) in the status."""
        if name not in self._functions.compiled:
            with self._lock:
                self._compiling_since = time.monotonic()
        try:
            return read(getattr(self._functions, name)(*args))
        finally:
            self._functions.compiled.add(name)
            with self._lock:
                self._compiling_since = None

    def _loop(self, callback: Callable[[TrainerStatus], None] | None, live: bool, max_steps: int | None) -> None:
        config = self.train_config
        chunk = config.steps_per_chunk
        if self._needs_initial:
            self._inspect(self._params(), 0)
            self._needs_initial = False
        budget = math.inf if max_steps is None else max_steps
        while not self._stop.is_set() and budget > 0:
            with self._lock:
                if self._learning_rate != self._state_learning_rate:  # a live change since the last call
                    self._state = set_learning_rate(self._state, self._learning_rate)
                    self._state_learning_rate = self._learning_rate
                state, step = self._state, self._step
                per_call = self._steps_per_call if live else chunk
            remaining = config.steps - step
            if remaining <= 0:
                break
            count = int(min(chunk, remaining, budget, per_call))
            active = np.arange(chunk) < count  # [K] steps past ``count`` are skipped
            compiling = "chunk" not in self._functions.compiled
            started = time.perf_counter()
            # The state stays on the device; only the metrics come to the host.
            new_state, metrics = self._call(
                "chunk", state, self._train_source, active, read=lambda out: (out[0], jax.device_get(out[1]))
            )
            seconds = time.perf_counter() - started
            budget -= count
            # Read from the device once per call (each read waits for the call to finish).
            new_step, diverged = self._record(new_state, metrics, active, seconds, compiling)
            if live and not compiling:
                per_step = seconds / count
                with self._lock:
                    self._steps_per_call = int(np.clip(round(LIVE_CALL_SECONDS / per_step), 1, chunk))
            done = new_step >= config.steps
            chosen = any(step < at <= new_step for at in self.snapshot_at)
            if diverged or done or chosen or new_step // config.eval_every > step // config.eval_every:
                self._inspect(state_params(self.model_config, new_state), new_step)
            if callback is not None:
                callback(self.status())
            if diverged:
                return
        with self._lock:
            step, inspected = self._step, self._history.last_evaluated
        if step != inspected:  # paused between evaluations: evaluate and snapshot where it stopped
            self._inspect(self._params(), step)
        with self._lock:
            if self._step >= config.steps:
                self._state_name = FINISHED
                self._message = f"Finished {self._step} steps."
            else:
                self._state_name = STOPPED
                self._message = f"Paused at step {self._step} of {config.steps}; Play resumes from here."
        if callback is not None:
            callback(self.status())

    def _record(
        self, new_state, metrics: dict, active: np.ndarray, seconds: float, compiling: bool
    ) -> tuple[int, bool]:
        """Adds one call's metrics to the history (under the lock); returns the new step and whether the
        run diverged."""
        failed = active & ~np.asarray(metrics["applied"])  # [K] non-finite steps (only possible once diverged)
        new_step, diverged = int(new_state.step), bool(new_state.diverged)
        with self._lock:
            self._state = new_state
            self._step = new_step
            self._history.add_call(metrics, active, seconds, compiling)
            if diverged:
                bad = float(metrics["loss"][int(np.argmax(failed))]) if failed.any() else math.nan
                what = f"the loss became {bad}" if not math.isfinite(bad) else "the gradients or weights overflowed"
                self._state_name = DIVERGED
                self._message = (
                    f"Training blew up at step {new_step + 1} ({what}) and stopped. The learning rate "
                    f"({self._learning_rate:g}) is probably too high. The parameters kept are those of "
                    f"step {new_step}, the last finite ones."
                )
            else:
                self._message = "Training…"
        return new_step, diverged

    def _inspect(self, params: hk.Params, step: int) -> None:
        """Evaluates on held-out data and records a snapshot of ``params`` at ``step``."""
        if not self._evaluate:
            return
        probe = self.probe
        inspected = self._call(
            "inspect", params, self._eval_source, self._eval_key, probe.inputs[None], probe.positions[None]
        )
        snapshot, closeness = take_snapshot(step, params, inspected, probe, self.spec, self.vocab)
        with self._lock:
            self._history.add_evaluation(step, inspected["loss"], inspected["accuracy"], closeness, snapshot)
