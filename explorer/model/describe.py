"""What the pages say about a model, derived from its config and its vocabulary.

A sentence such as "embedding rows scaled by √D" or "byte-level BPE tokens" is true of one model and false
of another (MiniLM adds its rows unscaled and cuts text into WordPiece tokens). Every such sentence is
built here from the facts that decide it, so a page can only describe the model it shows:

- ``ModelConfig`` fields: ``scale_embeddings``, ``positional``, ``token_types``, ``embedding_norm``,
  ``layer_norm``, and the embedding width (``embedding_width``: ELECTRA's embeddings are narrower than D);
- the vocabulary's ``kind`` (a key of ``TOKENIZER_KINDS``), ``closed``, ``encoding``, ``mask_text`` and
  ``special_texts`` (the tokens its tokenizer adds, e.g. ``[CLS]`` and ``[SEP]``);
- the training window a bundle records (``explorer.model.bundle.training_window``).

A new tokenizer kind is one entry of ``TOKENIZER_KINDS``; a new positional scheme one entry of
``POSITIONAL``. Functions return Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from explorer.model.config import ModelConfig

BYTE_LEVEL_BPE, WORDPIECE = "byte-level BPE", "WordPiece"


@dataclass(frozen=True)
class TokenizerKind:
    """How one kind of tokenizer cuts text, in words a learner reads.

    Attributes:
      cuts: what the text becomes ("byte-level BPE tokens: ...").
      differs: why another tokenizer may cut the same text at other places.
    """

    cuts: str
    differs: str


TOKENIZER_KINDS: dict[str, TokenizerKind] = {
    BYTE_LEVEL_BPE: TokenizerKind(
        cuts=(
            "**byte-level BPE** tokens: the text's UTF-8 bytes, merged step by step into the frequent pieces the "
            "vocabulary learned (a space belongs to the word after it)"
        ),
        differs="a BPE vocabulary merges bytes into the pieces it learned, so two vocabularies stop at different pieces",
    ),
    WORDPIECE: TokenizerKind(
        cuts=(
            "**WordPiece** tokens: the text is split into words and punctuation, and each word into the longest "
            "pieces the vocabulary knows (**##** marks a piece that continues a word)"
        ),
        differs=(
            "WordPiece splits at every space and punctuation mark and then into its own word pieces (## continues a "
            "word), so its cuts differ from a tiktoken encoding's wherever their vocabularies differ"
        ),
    ),
}


def tokenizer_kind(vocab: Any) -> TokenizerKind:
    """The ``TOKENIZER_KINDS`` entry of a vocabulary (``vocab.kind``), with a message naming the known ones."""
    kind = getattr(vocab, "kind", None)
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"No description of {kind!r} tokenizers; known kinds: {sorted(TOKENIZER_KINDS)}.")
    return TOKENIZER_KINDS[kind]


def specials_sentence(vocab: Any) -> str:
    """What the tokenizer adds around the text (``[CLS]`` … ``[SEP]``), or "" when it adds nothing."""
    specials = tuple(vocab.special_texts)
    if not specials:
        return ""
    if len(specials) == 2:
        return f"The tokenizer adds **{specials[0]}** before the text and **{specials[1]}** after it."
    return "The tokenizer adds " + ", ".join(f"**{s}**" for s in specials) + " to the text."


def tokenization_sentence(vocab: Any) -> str:
    """How this model's tokenizer cuts a text, and what a token is to the model."""
    text = (
        f"The encoder never sees characters: the text is cut into {tokenizer_kind(vocab).cuts}, and each token "
        "is a row of the model's embedding table."
    )
    specials = specials_sentence(vocab)
    return f"{text} {specials}" if specials else text


def vocabulary_sentence(vocab: Any) -> str:
    """What the vocabulary holds and what happens to a text it lacks pieces for."""
    if vocab.kind == BYTE_LEVEL_BPE and vocab.closed and getattr(vocab, "tiktoken_ids", None) is not None:
        return (
            f"This model keeps {vocab.size:,} tokens of {vocab.encoding} (all 256 bytes, its training text's most "
            "frequent tokens and the pieces BPE builds them from), so any text reaches it with no unknown token."
        )
    if vocab.closed:
        return f"This model's vocabulary ({vocab.size:,} tokens) covers every byte, so no text is unknown to it."
    unknown = vocab.token_text(vocab.unk_id)
    return f"This model's vocabulary ({vocab.size:,} tokens) is not closed: a piece outside it is read as {unknown}."


def differences_sentence(vocab: Any, encoding: str, count: int) -> str:
    """Why the model's tokens and ``encoding``'s cut ``count`` places of the same text differently."""
    if vocab.kind == BYTE_LEVEL_BPE and getattr(vocab, "tiktoken_ids", None) is not None and vocab.closed:
        if encoding == vocab.encoding:
            return (
                f"{count} place(s) are cut differently: those {encoding} tokens are not in the model's vocabulary, "
                "so BPE over its smaller vocabulary stops at pieces it knows. The model sees the pieces; nothing is "
                "lost or unknown."
            )
    return f"{count} place(s) are cut differently from {encoding}: {tokenizer_kind(vocab).differs}."


def same_cuts_sentence(vocab: Any, encoding: str) -> str:
    """The model's tokens and ``encoding``'s cut the text at the same places."""
    if encoding == vocab.encoding:
        return f"The model reads exactly the {encoding} tokens of this text."
    return f"The model cuts this text at exactly the places {encoding} does."


# ----------------------------------------------------------------------------------------------------
# What enters layer 1


@dataclass(frozen=True)
class Positional:
    """One positional scheme: what it adds (a noun phrase) and how to read it."""

    added: str  # "a sinusoidal positional encoding"
    reading: str  # a sentence about the view of the encoding
    similarity: str  # a sentence about PE·PEᵀ for this scheme


POSITIONAL: dict[str, Positional] = {
    "sinusoidal": Positional(
        added="a **sinusoidal** positional encoding",
        reading=(
            "Positional encoding: **sinusoidal (fixed)**. Each pair of dimensions is a sine/cosine clock with its own "
            "period; low dimensions tick fast, high ones slowly."
        ),
        similarity=(
            "PE·PEᵀ: each cell compares two positions. For sinusoids it depends only on their distance and falls off "
            "with it, so nearby positions look alike and the model can attend by relative position."
        ),
    ),
    "learned": Positional(
        added="a **learned** position row (one trained row per position)",
        reading=(
            "Positional encoding: **learned**. A table with one trained row per position, added to the token "
            "embedding; nothing forces its dimensions into clocks, so each curve is whatever training made it."
        ),
        similarity=(
            "PE·PEᵀ: each cell compares two positions' learned rows. Nothing forces it to depend on distance alone: "
            "a band along the diagonal means training made nearby positions look alike."
        ),
    ),
    "none": Positional(
        added="no positional encoding",
        reading="This model uses **no positional encoding**: it sees the sentence as a bag of tokens.",
        similarity="This model uses **no positional encoding**, so every position looks the same.",
    ),
}


def _positional(config: ModelConfig) -> Positional:
    if config.positional not in POSITIONAL:
        raise ValueError(f"No description of positional={config.positional!r}; known: {sorted(POSITIONAL)}.")
    return POSITIONAL[config.positional]


def width_symbol(config: ModelConfig) -> str:
    """The letter of the embeddings' width in shapes: ``D``, or ``E`` when they are narrower (ELECTRA)."""
    return "D" if config.embedding_width == config.d_model else "E"


def projection_sentence(config: ModelConfig) -> str:
    """What happens to narrow embeddings before layer 1, or "" when they are as wide as the model."""
    if config.embedding_width == config.d_model:
        return ""
    return (
        f" The embeddings are E = {config.embedding_width} numbers wide, narrower than the model's D = "
        f"{config.d_model}: a linear map trained with the model (the **embedding projection**) takes them up to D before layer 1."
    )


def token_row(config: ModelConfig) -> str:
    """What a token contributes: its embedding row, scaled or not."""
    return (
        f"its embedding row, times **√{width_symbol(config)}**"
        if config.scale_embeddings
        else "its embedding row (unscaled)"
    )


def embedding_parts(config: ModelConfig) -> list[str]:
    """The terms summed into layer 1's input, in the encoder's order."""
    parts = [token_row(config)]
    if config.positional != "none":
        parts.append(_positional(config).added)
    if config.token_types:
        parts.append("a **token-type** row (segment A for every token)")
    return parts


def _sum_of(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " plus " + parts[-1]


def embedding_caption(config: ModelConfig) -> str:
    """The Embeddings page's opening: what layer 1 receives for every token, and why position matters."""
    text = f"Layer 1 receives, for every token, {_sum_of(embedding_parts(config))}"
    text += ", **layer-normalised** by the embedding layer norm." if config.embedding_norm else "."
    text += projection_sentence(config)
    if config.positional == "none":
        return text + " Without positions, attention cannot tell word order: the model reads a bag of tokens."
    return text + " Attention alone cannot tell positions apart; the added position is what makes word order visible."


def token_embedding_sentence(config: ModelConfig, vocab: Any) -> str:
    """How to read the token-embedding heatmap."""
    scaled = (
        f" (times √{width_symbol(config)}, as the encoder scales them)"
        if config.scale_embeddings
        else " (added unscaled)"
    )
    text = f"One row per token: the model's embedding of that token{scaled}. Identical tokens have identical rows"
    if vocab.closed:
        return text + "."
    return text + f"; {vocab.token_text(vocab.unk_id)} tokens all share one row."


def positional_sentence(config: ModelConfig) -> str:
    """How to read the positional-encoding view."""
    return _positional(config).reading


def position_similarity_sentence(config: ModelConfig) -> str:
    """How to read PE·PEᵀ for this model's positional scheme."""
    return _positional(config).similarity


def embedding_sum_title(config: ModelConfig) -> str:
    """The title of the summed-embedding heatmap ("Token + position [T, D]")."""
    terms = ["Token"] + (["position"] if config.positional != "none" else []) + (["type"] if config.token_types else [])
    return " + ".join(terms) + f" [T, {width_symbol(config)}]"


def embedding_sum_sentence(config: ModelConfig) -> str:
    """How to read the summed-embedding view."""
    text = f"The sum of {_sum_of(embedding_parts(config))}"
    if config.embedding_norm:
        return (
            text + ", before the **embedding layer norm**: layer 1 reads this sum **layer-normalised** (the Layer "
            "norm page shows what that norm does)." + projection_sentence(config)
        )
    if config.embedding_width != config.d_model:
        return text + "." + projection_sentence(config)
    return text + ": the residual stream that layer 1 reads."


# ----------------------------------------------------------------------------------------------------
# Layer norms


LAYER_NORM_PLACEMENT = {
    "post": "after each sub-layer's residual add (**post-LN**, as in the paper)",
    "pre": "before each sub-layer (**pre-LN**), with a final layer norm at the end",
}


def layer_norm_sentence(config: ModelConfig, count: int) -> str:
    """Where this model's ``count`` layer norms sit."""
    text = f"This model normalises {LAYER_NORM_PLACEMENT[config.layer_norm]}: {count} layer norms"
    if config.embedding_norm and config.embedding_width != config.d_model:
        return text + (
            f", after the **embedding layer norm** on the {config.embedding_width}-wide embedding sum (not listed "
            "here: it normalises the narrower embeddings, before they are projected up to the model's width)."
        )
    if config.embedding_norm:
        return text + ", the first of them on the embedding sum before layer 1 (the **embedding layer norm**)."
    return text + "."


# ----------------------------------------------------------------------------------------------------
# Long inputs


def colouring_sentence(length: int, chosen: bool) -> str:
    """Why attention is coloured relative to uniform (``explorer.figures.attention_colour.RELATIVE``)."""
    text = "Colour: each weight against uniform attention (grey: the even share 1/keys; red: more; blue: less)"
    if chosen:
        return text + "."
    return text + f", chosen for a text of {length} tokens: on a 0–1 scale every broad head would be one dark colour."


def training_window_sentence(config: ModelConfig, window: int, length: int) -> str:
    """Why a text longer than the model's training window reads differently past it (the dashed line)."""
    head = f"This model was trained on **{window}-token** windows and the text has {length} tokens."
    if config.positional == "sinusoidal":
        why = (
            f"Past position {window - 1} (the dashed line) the sinusoids reach phases it never saw, so heads that "
            "follow position, such as a previous-token diagonal, stop there."
        )
    elif config.positional == "learned":
        why = (
            f"Past position {window - 1} (the dashed line) its position rows were never trained, so heads that "
            "follow position, such as a previous-token diagonal, stop there."
        )
    else:
        why = "Past the dashed line each query averages over more keys than it ever did in training."
    return f"{head} {why}"


# ----------------------------------------------------------------------------------------------------
# Training facts


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# (where in ``bundle.info``, label, how to write the value): the facts a reader looks for, rounded.
SUMMARY_FIELDS: tuple[tuple[tuple[str, ...], str, Any], ...] = (
    (("train_config", "task"), "Task", str),
    (("text",), "Text", str),
    (("steps",), "Steps", lambda v: f"{v:,}"),
    (("train_config", "batch_size"), "Batch (sequences)", lambda v: f"{v:,}"),
    (("train_config", "seq_len"), "Window (tokens)", lambda v: f"{v:,}"),
    (("train_config", "learning_rate"), "Peak learning rate", lambda v: f"{v:g}"),
    (("train_config", "seed"), "Seed", str),
    (("final_train_loss",), "Final training loss", lambda v: f"{v:.3g}"),
    (("final_eval_loss",), "Held-out loss", lambda v: f"{v:.3g}"),
    (("final_eval_accuracy",), "Held-out accuracy", lambda v: f"{v:.1%}"),
    (("steps_per_second",), "Speed (steps/s)", lambda v: f"{v:.1f}"),
    (("command",), "Command", str),
)
_SUMMARISED = {path[0] for path, _, _ in SUMMARY_FIELDS} | {"eval", "attention_closeness"}


def _at(info: dict, path: tuple[str, ...]) -> Any:
    value: Any = info
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def training_summary(info: dict) -> list[tuple[str, str]]:
    """``(fact, value)`` rows of a bundle's ``info`` for a table: the known training facts, rounded for
    reading, then any other single value it records (a pretrained model's source, its parameter count).
    Missing facts are left out; lists and nested records stay in the raw JSON."""
    if not isinstance(info, dict):
        return []
    rows = []
    for path, label, write in SUMMARY_FIELDS:
        value = _at(info, path)
        if value is None or (write is not str and not _number(value)):
            continue
        rows.append((label, write(value)))
    for key, value in info.items():
        if key in _SUMMARISED or isinstance(value, (dict, list, tuple)) or value is None:
            continue
        written = (f"{value:,}" if isinstance(value, int) else f"{value:.4g}") if _number(value) else str(value)
        rows.append((key[:1].upper() + key[1:].replace("_", " "), written))
    return rows
