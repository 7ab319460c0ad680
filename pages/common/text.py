"""The shared sentence: one text for every page, kept in session state and in the URL, tokenized for the
current model through ``explorer.pipeline`` (the same path the CLI takes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer.model.bundle import ModelBundle
from explorer.model.config import ModelConfig
from explorer.model.inference import InferenceEngine, Inspection
from explorer.pipeline import EmptyText, PreparedText, prepare_text, run_text
from explorer.text.pretrained_vocab import PretrainedVocab
from explorer.text.tokenizer import Tokenized, display_text
from explorer.text.vocab import Vocab
from pages.common.resources import get_engine
from pages.common.session import current_bundle
from pages.common.url_state import URL_MAX_CHARS, link_value, sync_url, url_value

TEXT_KEY = "text"  # the sentence every page shows; also its URL query parameter (?text=...)
TEXT_WIDGET_KEY = "sidebar_text"  # the text area's own widget key


# No [MASK] here: a mask draws most of layer 1's attention to itself, and the default view should show the
# heads' own patterns (previous token, next token, function words). The Fill mask page offers examples.
DEFAULT_TEXT = "She opened the door and walked into the room where her father was waiting."


def _store_text() -> None:
    st.session_state[TEXT_KEY] = st.session_state[TEXT_WIDGET_KEY]


def text_box() -> None:
    """The text area every page shows in its sidebar.

    The sentence lives under ``TEXT_KEY`` in session state (not under the widget's key, which Streamlit
    forgets when a page without the widget runs), is seeded once from ``?text=`` and mirrored back to
    the URL, so a link shares exactly this sentence.
    """
    state = st.session_state
    if TEXT_KEY not in state:
        state[TEXT_KEY] = url_value(TEXT_KEY, DEFAULT_TEXT)
    elif link_value(TEXT_KEY) is not None:  # a link with another text was followed (a lesson)
        state[TEXT_KEY] = link_value(TEXT_KEY)
    state[TEXT_WIDGET_KEY] = state[TEXT_KEY]
    st.sidebar.text_area(
        "Text",
        key=TEXT_WIDGET_KEY,
        on_change=_store_text,
        height=110,
        placeholder="Type a sentence…",
    )
    # No help= on this widget: its tooltip button would also be labelled "Text" for a browser test.
    st.sidebar.caption(
        "Every page follows this text (Ctrl+Enter or click outside to apply); the page address "
        "keeps it, so a link shares exactly this view."
    )
    sync_url(TEXT_KEY, state[TEXT_KEY], DEFAULT_TEXT)
    if len(state[TEXT_KEY]) > URL_MAX_CHARS:
        st.sidebar.caption(f"The text is longer than {URL_MAX_CHARS} characters, so it is not put in the link.")


def current_text() -> str:
    value = st.session_state.get(TEXT_KEY, DEFAULT_TEXT)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Sentence:
    """The current text against the current model: its tokens (``explorer.pipeline.PreparedText``) and
    the engine to run them."""

    bundle: ModelBundle
    prepared: PreparedText

    @property
    def tokenized(self) -> Tokenized:
        return self.prepared.tokens

    @property
    def model_ids(self) -> np.ndarray:  # [T] int32
        return self.prepared.model_ids

    @property
    def unknown(self) -> np.ndarray:  # [T] bool: not in the model's vocabulary, fed as [UNK]
        return self.prepared.unknown

    @property
    def labels(self) -> list[str]:
        return self.prepared.labels

    @property
    def engine(self) -> InferenceEngine:
        """Fetched on first use, so a page that only tokenizes never waits for the compile warm-up."""
        return get_engine(self.bundle.config)

    def run(self, head_mask: np.ndarray | None = None, causal: bool = False) -> Inspection:
        return run_text(self.bundle, self.engine, self.prepared, head_mask, causal).result

    def __len__(self) -> int:
        return len(self.model_ids)


@dataclass(frozen=True)
class SentenceView:
    """What a page's view draws from: the sentence and its run through the model."""

    sentence: Sentence
    out: Inspection

    @property
    def labels(self) -> list[str]:
        return self.sentence.labels

    @property
    def config(self) -> ModelConfig:
        return self.sentence.bundle.config


def prepare(text: str, bundle: ModelBundle, messages: bool = True) -> Sentence | None:
    """Tokenizes ``text`` for ``bundle`` (``explorer.pipeline.prepare_text``) and shows its notices.

    Returns None (after an ``st.info``) when there is nothing to run: empty or whitespace-only text.
    """
    try:
        prepared = prepare_text(bundle, text)
    except EmptyText as error:
        if messages:
            st.info(f"{error} Use the **Text** box in the sidebar.")
        return None
    if messages:
        for notice in prepared.notices:
            st.warning(notice)
    return Sentence(bundle, prepared)


def current_sentence(messages: bool = True) -> Sentence | None:
    """The shared text against this user's model (see ``prepare``)."""
    return prepare(current_text(), current_bundle(), messages)


def model_token_labels(bundle: ModelBundle) -> list[str]:
    """A readable label for every row of the model's vocabulary (specials included)."""
    return _vocab_labels(bundle.vocab)


# A vocabulary is keyed by what defines it: Streamlit would otherwise pickle it to hash it, and a WordPiece
# vocabulary holds a `tokenizers` object that cannot be pickled.
@st.cache_data(
    show_spinner=False,
    max_entries=8,
    hash_funcs={
        Vocab: lambda vocab: (vocab.encoding, vocab.tiktoken_ids),
        PretrainedVocab: lambda vocab: (vocab.folder, vocab.encoding, vocab.rows),
    },
)
def _vocab_labels(vocab: Vocab | PretrainedVocab) -> list[str]:
    return [display_text(vocab.token_text(i)) for i in range(vocab.size)]
