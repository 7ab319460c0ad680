"""Model configuration: one frozen, validated dataclass that describes an encoder.

Frozen configs are hashable, so a config can key a cache of compiled functions or be a static argument
to ``jax.jit``. Every invariant is checked in ``__post_init__`` with a message that says how to fix it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from explorer.text.texts import ENGLISH_VOCAB_SIZE

POSITIONAL_KINDS = ("sinusoidal", "learned", "none")
LAYER_NORM_PLACEMENTS = ("post", "pre")
# The feed-forward (and prediction head) non-linearities of the BERT family: exact (erf) GELU as in BERT,
# the tanh approximation (Hugging Face's "gelu_new" / "gelu_pytorch_tanh"), and ReLU.
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
MAX_POSITION_OFFSET = 16  # RoBERTa's is 2 (padding_idx + 1); a larger one would be a different scheme

# Limits that keep a toy model toy-sized: they guard the UI and checkpoint loader against a config that
# would exhaust memory on a laptop, not any property of the architecture.
MAX_D_MODEL = 1024
MAX_LAYERS = 24
MAX_HEADS = 64
MAX_LEN_LIMIT = 4096
MAX_VOCAB = 300_000
# An epsilon this large would change what a layer norm computes, not just keep it finite.
MAX_LAYER_NORM_EPS = 0.1
MAX_TOKEN_TYPES = 16  # BERT uses 2 (sentence A / B); a few more would serve any segment scheme


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the encoder.

    Defaults describe the model the app opens on: small enough that a forward pass with every
    intermediate takes well under a millisecond on a 2-core CPU, large enough to show structure.
    """

    vocab_size: int = ENGLISH_VOCAB_SIZE  # a closed subset of cl100k (explorer/text/vocab.py) sized for English
    d_model: int = 128  # residual-stream width: enough to hold English words, small enough for 2 CPU cores
    num_heads: int = 4  # 4 heads x 32 dims: enough heads to see specialisation, each still wide enough
    num_layers: int = 2  # two layers already show composition (heads reading earlier heads)
    ffn_size: int = 512  # the paper's 4 x d_model
    max_len: int = 512  # longest input; inference pads to power-of-two buckets up to this
    positional: str = "sinusoidal"  # "sinusoidal" (the paper), "learned", or "none" (a bag of tokens)
    layer_norm: str = "post"  # "post" as in the paper; "pre" trains more stably at depth
    dropout: float = 0.0  # only active in training; off by default because toy runs are short
    # Tie the output head to the embedding table: halves a large vocabulary's parameters, and rare tokens
    # learn from being predicted too. Checkpoints saved before this field existed have a separate head.
    # (Without an output head there is nothing to tie.)
    tie_embeddings: bool = True
    # The fields below describe pretrained BERT-style encoders (explorer/model/pretrained/); their defaults are
    # what every model before them did, so old checkpoints, parameter trees and outputs are unchanged.
    scale_embeddings: bool = True  # the paper multiplies embedding rows by sqrt(D); BERT adds them unscaled
    token_types: int = 0  # rows of a segment (token-type) embedding added to every token; BERT has 2, we use row 0
    embedding_norm: bool = False  # BERT layer-normalises the embedding sum before layer 1; the paper does not
    layer_norm_eps: float = 1e-5  # hk.LayerNorm's default; BERT was trained with 1e-12 and needs it to match
    output_head: bool = True  # a Linear to vocabulary logits; sentence encoders such as MiniLM ship without one
    # The fields below describe the rest of the BERT family (explorer/model/pretrained/); again, their defaults
    # are what every earlier model did.
    activation: str = "gelu"  # the feed-forward's non-linearity, one of ACTIVATIONS
    # Learned positions start at this row of the table: RoBERTa numbers positions from padding_idx + 1 = 2,
    # so its table has max_len + 2 rows and rows 0 and 1 are never read for a text.
    position_offset: int = 0
    # Width of the token, position and type embeddings when it differs from d_model (ELECTRA: a small
    # embedding projected up to D by ``embeddings_project``); 0 means d_model.
    embedding_size: int = 0
    # A masked-LM head's transform before the vocabulary: dense to the embedding width, head_activation,
    # layer norm (BERT's cls.predictions.transform, RoBERTa's lm_head, DistilBERT's vocab_transform, ELECTRA's
    # generator_predictions); without it the logits read the final hidden states directly, as our models do.
    head_transform: bool = False
    head_activation: str = "gelu"  # RoBERTa and ELECTRA use exact GELU here whatever the feed-forward's

    def __post_init__(self) -> None:
        def check_int(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}.")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, got {value}.")

        check_int("vocab_size", 4, MAX_VOCAB)
        check_int("d_model", 2, MAX_D_MODEL)
        check_int("num_heads", 1, MAX_HEADS)
        check_int("num_layers", 1, MAX_LAYERS)
        check_int("ffn_size", 1, 16 * MAX_D_MODEL)
        check_int("max_len", 1, MAX_LEN_LIMIT)
        if self.d_model % self.num_heads:
            divisors = [h for h in range(1, min(self.d_model, MAX_HEADS) + 1) if self.d_model % h == 0]
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}) so every "
                f"head gets the same key size; try num_heads in {divisors[-6:]} or change d_model."
            )
        if self.positional == "sinusoidal" and self.d_model % 2:
            raise ValueError(
                f"Sinusoidal positional encoding pairs sin/cos dimensions, so d_model must be even "
                f"(got {self.d_model}); use d_model={self.d_model + 1} or positional='learned'."
            )
        if self.positional not in POSITIONAL_KINDS:
            raise ValueError(f"positional must be one of {POSITIONAL_KINDS}, got {self.positional!r}.")
        if self.layer_norm not in LAYER_NORM_PLACEMENTS:
            raise ValueError(f"layer_norm must be one of {LAYER_NORM_PLACEMENTS}, got {self.layer_norm!r}.")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"tie_embeddings must be true or false, got {self.tie_embeddings!r}.")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        for name in ("scale_embeddings", "embedding_norm", "output_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        check_int("token_types", 0, MAX_TOKEN_TYPES)
        for name in ("activation", "head_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {ACTIVATIONS}, got {getattr(self, name)!r}.")
        check_int("position_offset", 0, MAX_POSITION_OFFSET)
        if self.position_offset and self.positional != "learned":
            raise ValueError(
                f"position_offset ({self.position_offset}) shifts rows of a learned position table; "
                f"positional={self.positional!r} has none: use positional='learned' or position_offset=0."
            )
        check_int("embedding_size", 0, MAX_D_MODEL)
        if not isinstance(self.head_transform, bool):
            raise ValueError(f"head_transform must be true or false, got {self.head_transform!r}.")
        if self.head_transform and not self.output_head:
            raise ValueError("head_transform is part of an output head: set output_head=True or head_transform=False.")
        if self.positional == "sinusoidal" and self.embedding_width % 2:
            raise ValueError(
                f"Sinusoidal positional encoding pairs sin/cos dimensions, so the embedding width must be even "
                f"(got {self.embedding_width}); use positional='learned' or an even embedding_size."
            )
        if (
            self.output_head
            and self.tie_embeddings
            and self.embedding_width != self.d_model
            and not self.head_transform
        ):
            raise ValueError(
                f"A head tied to the {self.embedding_width}-wide embedding table cannot read {self.d_model}-wide "
                "hidden states: set head_transform=True (it maps them to the embedding width) or tie_embeddings=False."
            )
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < float(eps) <= MAX_LAYER_NORM_EPS:
            raise ValueError(
                f"layer_norm_eps must be a number in (0, {MAX_LAYER_NORM_EPS}], got {eps!r}; it only guards the "
                f"division by the standard deviation: use 1e-5 (Haiku's default) or the value a pretrained model "
                f"was trained with (1e-12 for BERT)."
            )

    @property
    def key_size(self) -> int:
        """Width of each head's queries, keys and values."""
        return self.d_model // self.num_heads

    @property
    def embedding_width(self) -> int:
        """``E``: the width of the token, position and type embeddings (``d_model`` unless ``embedding_size``)."""
        return self.embedding_size or self.d_model

    @property
    def position_rows(self) -> int:
        """Rows of a learned position table: ``max_len`` positions after ``position_offset`` unused rows."""
        return self.max_len + self.position_offset

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Builds a config from a dict (e.g. a checkpoint's metadata), rejecting unknown fields."""
        if not isinstance(data, dict):
            raise ValueError(f"A model config must be a mapping, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        data = {"tie_embeddings": False, **data}  # absent in older checkpoints, whose output head is separate
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown model config field(s) {unknown}; known fields are {sorted(known)}.")
        return cls(**data)
