"""Shared state for every page: cached resources (built once per process) and per-user session state.

Resources from ``st.cache_resource`` are shared by all sessions and never mutated. Anything a user can
change (their text, their model after training, their selections) lives in ``st.session_state``.
"""

from __future__ import annotations

import streamlit as st

from explorer import DEFAULT_CHECKPOINT, checkpoint
from explorer.bundle import ModelBundle
from explorer.config import ModelConfig
from explorer.inference import InferenceEngine, enable_compilation_cache
from explorer.tokenizer import Tokenizer

MODEL_KEY = "model_bundle"  # the ModelBundle every page shows for this user


@st.cache_resource(show_spinner="Loading the tokenizer…")
def get_tokenizer(name: str) -> Tokenizer:
    return Tokenizer(name)


@st.cache_resource(show_spinner="Compiling the encoder for every input length…")
def get_engine(config: ModelConfig) -> InferenceEngine:
    """One engine per architecture; its compiled programs take parameters as input, so any user's
    trained parameters for the same config run without a compile."""
    enable_compilation_cache()
    return InferenceEngine(config)


@st.cache_resource(show_spinner="Loading the default model…")
def default_bundle() -> tuple[ModelBundle, str | None]:
    """The shipped checkpoint, or (when it is missing or unreadable) a labelled random model."""
    try:
        return checkpoint.load(DEFAULT_CHECKPOINT), None
    except checkpoint.CheckpointError as error:
        from explorer.corpus import corpus_vocab

        config = ModelConfig()
        vocab = corpus_vocab(config.vocab_size)
        return ModelBundle.random(config, vocab), f"The default checkpoint could not be loaded ({error})."


def current_bundle() -> ModelBundle:
    """The model this user's pages show: their own trained/uploaded one, else the default."""
    if MODEL_KEY not in st.session_state:
        st.session_state[MODEL_KEY] = default_bundle()[0]
    return st.session_state[MODEL_KEY]


def set_bundle(bundle: ModelBundle) -> None:
    """Makes ``bundle`` the model every page shows for this user (after training or an upload)."""
    st.session_state[MODEL_KEY] = bundle
