"""How to train, and every training default in one place: the per-task defaults (``TASK_DEFAULTS``,
``default_model_config``: the model a new training builds), ``TrainConfig`` (what the CLI flags and the
trainer read) and ``LiveSettings`` (what the Train page and a lesson link set), with the live policy
(how many steps per compiled call, how often to evaluate).

Nothing else restates a default: the CLI's flags read ``TrainConfig``'s fields and build their model with
``default_model_config``; the Train page's widgets start from ``LiveSettings``' fields (the per-task
defaults of its first task), offer ``LIVE_CHOICES``, and build their model with ``default_model_config``
too. So ``python -m explorer train --task reverse`` builds what the Train page builds for reverse.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from explorer.model.config import LAYER_NORM_PLACEMENTS, POSITIONAL_KINDS, ModelConfig
from explorer.text.texts import DEFAULT_TEXT, TEXT_NAMES, TOY_TASK_TEXT, UPLOADED, default_vocab_size
from explorer.training.tasks import TASKS, TEXT_TASKS, TaskSpec


@dataclass(frozen=True)
class TaskDefaults:
    """What a new model for one task gets unless told otherwise (a vocabulary sized for what it trains on
    and a feed-forward net of 4 x d_model come with it: ``default_model_config``)."""

    seq_len: int  # training windows
    d_model: int
    num_layers: int
    num_heads: int
    # Whether the output head reads the embedding table backwards. Text tasks do: their vocabulary is
    # large and most tokens are rare. The toy tasks do not: a handful of symbols learn faster with a head of
    # their own (reverse at the test size: 100% held-out accuracy at step 300 untied, 84% at step 400 tied).
    tie_embeddings: bool


# Text tasks: the English default model's size (it was trained with these defaults, see the README).
TEXT_DEFAULTS = TaskDefaults(
    seq_len=64,
    d_model=ModelConfig.d_model,
    num_layers=ModelConfig.num_layers,
    num_heads=ModelConfig.num_heads,
    tie_embeddings=True,
)
# Toy tasks: 16 symbols need no more than this; at this size a toy task learns in seconds and trains live
# on a laptop while its attention visibly forms (the Train page starts here).
TOY_DEFAULTS = TaskDefaults(seq_len=16, d_model=64, num_layers=2, num_heads=4, tie_embeddings=False)
TASK_DEFAULTS = {task: TEXT_DEFAULTS if task in TEXT_TASKS else TOY_DEFAULTS for task in TASKS}


def default_model_config(task: str, text: str = DEFAULT_TEXT, **changes) -> ModelConfig:
    """The architecture a new model for ``task`` gets: ``TASK_DEFAULTS[task]``, a vocabulary sized for
    ``text`` (a named text or ``UPLOADED``; the toy tasks borrow the grammar's), a feed-forward net of
    4 x d_model, and ``ModelConfig``'s own defaults for the rest. ``changes`` set any field."""
    defaults = TASK_DEFAULTS[task]
    fields = {
        "vocab_size": default_vocab_size(text if task in TEXT_TASKS else TOY_TASK_TEXT),
        "d_model": defaults.d_model,
        "num_layers": defaults.num_layers,
        "num_heads": defaults.num_heads,
        "tie_embeddings": defaults.tie_embeddings,
        **changes,
    }
    fields.setdefault("ffn_size", 4 * fields["d_model"])
    return ModelConfig(**fields)


# Fields of TrainConfig that compiled programs take as inputs (optimizer hyperparameters in the state,
# the seed as an argument) rather than bake in: changing them (a new seed, a live learning rate, more
# steps) reuses the programs already compiled.
RUNTIME_FIELDS = ("text", "steps", "learning_rate", "warmup_steps", "end_lr_fraction", "seed", "eval_every")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the architecture is a separate ``ModelConfig``)."""

    task: str = "mlm"
    text: str = DEFAULT_TEXT  # a named training text of explorer.text.texts, or "uploaded" (text tasks only)
    steps: int = 2000
    batch_size: int = 32
    seq_len: int = 64  # training windows are short; sinusoidal positions still let the app run longer text
    learning_rate: float = 3e-3  # peak after warm-up; small post-LN models tolerate this with clipping
    warmup_steps: int = 100  # Adam's early moment estimates are noisy; ramping up avoids a post-LN blow-up
    end_lr_fraction: float = 0.1  # cosine decay to 10% of peak: late steps refine instead of bouncing
    weight_decay: float = 0.01
    clip_norm: float = 1.0  # clip_by_global_norm: a single bad batch cannot throw the weights away
    steps_per_chunk: int = 20  # steps per compiled call: ~0.3 s at the default size, so the UI stays live
    eval_every: int = 100  # steps between evaluations on held-out data
    eval_batches: int = 4
    seed: int = 0
    mask_rate: float = 0.15
    num_symbols: int = 16
    copy_offset: int = 3

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "steps_per_chunk", "eval_every", "eval_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}.")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.clip_norm <= 0:
            raise ValueError("warmup_steps and weight_decay must be >= 0 and clip_norm > 0.")
        if self.text not in (*TEXT_NAMES, UPLOADED):
            raise ValueError(f"text must be one of {(*TEXT_NAMES, UPLOADED)}, got {self.text!r}.")
        self.task_spec  # validates the task fields  # noqa: B018

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(
            task=self.task,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            mask_rate=self.mask_rate,
            num_symbols=self.num_symbols,
            copy_offset=self.copy_offset,
        )

    @property
    def schedule(self) -> dict[str, float]:
        """The learning-rate schedule's numbers (warm-up, then cosine decay), as the optimizer state holds
        them: see ``explorer.training.step.learning_rate_at``."""
        warmup = min(self.warmup_steps, max(self.steps - 1, 0))
        return {
            "learning_rate": float(self.learning_rate),
            "warmup_steps": float(warmup),
            "decay_steps": float(max(self.steps, warmup + 1)),
            "end_fraction": float(self.end_lr_fraction),
        }

    def program_key(self) -> TrainConfig:
        """This config with every runtime field at its default: configs with equal keys share compiled
        programs (``RUNTIME_FIELDS``)."""
        return dataclasses.replace(self, **{name: getattr(TrainConfig, name) for name in RUNTIME_FIELDS})

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_train_config(task: str, **changes) -> TrainConfig:
    """A config with the task's default sequence length (toy tasks use short sequences)."""
    return TrainConfig(task=task, seq_len=TASK_DEFAULTS[task].seq_len).replace(**changes)


# ---------------------------------------------------------------------------------------------------
# Live training (the Train page)

# Where the Train page starts: a toy task that learns in seconds, at its own defaults (TOY_DEFAULTS).
LIVE_TASK = "reverse"
LIVE_STEPS = 600
LIVE_CALL_SECONDS = 0.1  # work per compiled call while live: Pause and Stop wait at most about this long
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0, 1e4)  # 1e4 shows a blow-up

# What the page offers for each setting (a URL may only choose among these).
LIVE_CHOICES: dict[str, tuple] = {
    "task": TASKS,
    "text": TEXT_NAMES,
    "batch_size": (8, 16, 32, 64),
    "num_layers": (1, 2, 3, 4),
    "num_heads": (1, 2, 4, 8),
    "d_model": (16, 32, 64, 128),
    "positional": POSITIONAL_KINDS,
    "layer_norm": LAYER_NORM_PLACEMENTS,
    "learning_rate": LEARNING_RATES,
}
LIVE_STEP_RANGE = (10, 50_000)
LIVE_SEED_RANGE = (0, 2**31 - 1)
LIVE_CHANGES = ("learning_rate",)  # settings a running training takes at once; the rest apply on Reset


@dataclass(frozen=True)
class LiveSettings:
    """Everything the Train page sets, and so everything a lesson link can set."""

    task: str = LIVE_TASK
    text: str = DEFAULT_TEXT  # a named text; the page may train on an uploaded text instead
    steps: int = LIVE_STEPS
    batch_size: int = TrainConfig.batch_size
    num_layers: int = TASK_DEFAULTS[LIVE_TASK].num_layers
    num_heads: int = TASK_DEFAULTS[LIVE_TASK].num_heads
    d_model: int = TASK_DEFAULTS[LIVE_TASK].d_model
    positional: str = ModelConfig.positional
    layer_norm: str = ModelConfig.layer_norm
    learning_rate: float = TrainConfig.learning_rate
    seed: int = TrainConfig.seed

    def __post_init__(self) -> None:
        for name, choices in LIVE_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}.")
        if not LIVE_STEP_RANGE[0] <= self.steps <= LIVE_STEP_RANGE[1]:
            raise ValueError(f"steps must be between {LIVE_STEP_RANGE[0]} and {LIVE_STEP_RANGE[1]}.")
        if not LIVE_SEED_RANGE[0] <= self.seed <= LIVE_SEED_RANGE[1]:
            raise ValueError(f"seed must be between {LIVE_SEED_RANGE[0]} and {LIVE_SEED_RANGE[1]}.")

    def model_config(self, uploaded: bool = False) -> ModelConfig:
        """The architecture (``default_model_config`` with the page's choices); the vocabulary is sized for
        the training text (or the toy tasks' grammar)."""
        return default_model_config(
            self.task,
            UPLOADED if uploaded else self.text,
            d_model=self.d_model,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            positional=self.positional,
            layer_norm=self.layer_norm,
        )

    def train_config(self, uploaded: bool = False) -> TrainConfig:
        base = default_train_config(self.task)
        chunk = live_chunk_size(self.batch_size, base.seq_len)
        return base.replace(
            steps=self.steps,
            batch_size=self.batch_size,
            learning_rate=float(self.learning_rate),
            text=UPLOADED if uploaded and self.task in TEXT_TASKS else self.text,
            seed=self.seed,
            steps_per_chunk=chunk,
            eval_every=live_eval_every(self.steps, chunk),
        )

    def needs_reset(self, other: LiveSettings) -> tuple[str, ...]:
        """The settings that differ from ``other`` and that a running training cannot take: they apply
        on Reset (a new model)."""
        return tuple(
            f.name
            for f in dataclasses.fields(self)
            if f.name not in LIVE_CHANGES and getattr(self, f.name) != getattr(other, f.name)
        )

    def describe(self) -> str:
        """A short label for comparing runs: what usually differs between them."""
        return (
            f"{self.task} · {self.num_layers}x{self.num_heads} d{self.d_model} {self.layer_norm}-LN · "
            f"lr {self.learning_rate:g} · seed {self.seed}"
        )

    def differences(self, other: LiveSettings) -> str:
        """This run's values of the settings that differ from ``other`` (another run), as a short label
        ("lr 0.01 · seed 3"), or "same settings": what tells two runs on one loss chart apart."""
        names = {"num_layers": "layers", "num_heads": "heads", "batch_size": "batch", "learning_rate": "lr"}
        parts = []
        for f in dataclasses.fields(self):
            mine = getattr(self, f.name)
            if mine == getattr(other, f.name) or (f.name == "text" and self.task not in TEXT_TASKS):
                continue
            value = f"{mine:g}" if isinstance(mine, float) else (f"{mine}-LN" if f.name == "layer_norm" else mine)
            parts.append(str(value) if f.name in ("task", "layer_norm") else f"{names.get(f.name, f.name)} {value}")
        return " · ".join(parts) or "same settings"

    @classmethod
    def from_configs(cls, model: ModelConfig, train: TrainConfig) -> LiveSettings:
        """The settings a trainer was built with, read back from its configs (a page that reattaches to a
        run after a reload). A run on an uploaded text gets the default text: the upload is not kept."""
        return cls(
            task=train.task,
            text=train.text if train.text in TEXT_NAMES else DEFAULT_TEXT,
            steps=train.steps,
            batch_size=train.batch_size,
            num_layers=model.num_layers,
            num_heads=model.num_heads,
            d_model=model.d_model,
            positional=model.positional,
            layer_norm=model.layer_norm,
            learning_rate=float(train.learning_rate),
            seed=train.seed,
        )

    def replace(self, **changes) -> LiveSettings:
        return dataclasses.replace(self, **changes)


def live_chunk_size(batch_size: int, seq_len: int) -> int:
    """Steps one compiled call can run for live training: ~0.2-0.4 s of work at the page's sizes. The
    trainer runs fewer per call while live (``LIVE_CALL_SECONDS``); this bounds the program's length."""
    return int(min(50, max(2, round(10_240 / (batch_size * seq_len)))))


def live_eval_every(steps: int, chunk: int) -> int:
    """Steps between evaluations (and snapshots) of a live run: about 40 over the run."""
    return max(chunk, math.ceil(steps / 40 / chunk) * chunk)
