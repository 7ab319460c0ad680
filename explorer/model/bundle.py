"""A model bundle: everything needed to run and explain one model (config, parameters, vocabulary).

The app keeps one bundle per user in session state; the live trainer produces new ones; checkpoints
serialise them. Bundles are immutable: training yields a new bundle rather than editing one in place,
so a cached or shared bundle can never change under another user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import haiku as hk
import jax

from explorer.model.config import ModelConfig
from explorer.model.encoder import init_params
from explorer.text.pretrained_vocab import PretrainedVocab
from explorer.text.vocab import Vocab

# What a pretrained model was trained for elsewhere (explorer/model/pretrained/). Such a bundle is trained, so
# no view calls its weights random, but not on one of explorer.training.tasks.TASKS, so this app cannot train it
# further. MiniLM embeds sentences; a checkpoint with a masked-LM head fills masks; one without a head (a base
# model, an ELECTRA discriminator) gives hidden states only.
SENTENCE_SIMILARITY = "sentence-similarity"
MASKED_LM = "masked-lm"
FEATURE_EXTRACTION = "feature-extraction"
PRETRAINED_TASKS = (SENTENCE_SIMILARITY, MASKED_LM, FEATURE_EXTRACTION)
MASK_FILLING_TASKS = ("mlm", MASKED_LM)  # trained to guess a hidden token from both sides


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """Attributes:
    config: the architecture.
    params: Haiku parameters as device arrays.
    vocab: maps tiktoken ids to the model's rows (``Vocab``), or a pretrained model's own ids
      (``PretrainedVocab``, WordPiece or byte-level BPE, whose ids are the rows). Either says what the views
      say about tokens: ``kind``, ``mask_text``, ``special_texts``, ``closed``, ``encoding``.
    source: a short human label ("random weights (seed 0)", "checkpoint default.safetensors", ...).
    task: the task the model was trained on (one of ``explorer.training.tasks.TASKS``, or of ``PRETRAINED_TASKS`` for a model
      trained elsewhere), or None for an untrained model.
    info: free-form facts shown to the user (training steps, final loss, ...).
    name: a short name for pickers and titles ("bert-base-uncased"); ``display_name`` falls back to ``source``.
    """

    config: ModelConfig
    params: hk.Params
    vocab: Vocab | PretrainedVocab
    source: str
    task: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if self.vocab.size != self.config.vocab_size:
            raise ValueError(
                f"The vocabulary has {self.vocab.size} entries but the config says vocab_size={self.config.vocab_size}."
            )

    @property
    def trained(self) -> bool:
        return self.task is not None

    @property
    def fills_masks(self) -> bool:
        """Whether the model was trained to fill a masked token (our mlm task, or a pretrained masked-LM
        head): fill-mask, per-position guesses and the prediction views read its logits that way."""
        return self.config.output_head and self.task in MASK_FILLING_TASKS

    @property
    def display_name(self) -> str:
        return self.name or self.source

    @classmethod
    def random(cls, config: ModelConfig, vocab: Vocab, seed: int = 0) -> ModelBundle:
        """An untrained model: useful to compare against, and labelled as such everywhere."""
        params = jax.device_put(init_params(config, seed))
        return cls(config=config, params=params, vocab=vocab, source=f"random weights (seed {seed}, untrained)")


def training_window(bundle: ModelBundle) -> int | None:
    """The token windows the model was trained on (``info["train_config"]["seq_len"]``: 64 for the default
    model), or None when the bundle does not say (a pretrained model, an untrained one). Past that position
    a model meets positions it never saw in training."""
    train_config = bundle.info.get("train_config") if isinstance(bundle.info, dict) else None
    length = train_config.get("seq_len") if isinstance(train_config, dict) else None
    return length if isinstance(length, int) and not isinstance(length, bool) and length > 0 else None
