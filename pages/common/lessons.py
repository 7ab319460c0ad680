"""The "Start here" path on the first page: a few lesson links, one sentence each, from tokens to attention to
training. Every view is in the page address (``pages.common.url_state``), so a lesson is a page and its
query parameters; following one applies them even to choices the user made before (``link_value``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from pages.common.session import PAGE_KEY, PREVIOUS_PAGE_KEY

SEEN_KEY = "start_here_seen"  # the path opens expanded on a session's first visit, then folds away


@dataclass(frozen=True)
class Lesson:
    title: str
    page: str  # the page's file, as app.py registers it
    query: dict[str, str] = field(default_factory=dict)  # the page's choices, as its link carries them
    sentence: str = ""


# The lessons about the model speak of the English default model (its heads, as its Interpret page labels
# them), so they open that model whatever the picker shows.
LESSONS = (
    Lesson("Tokens", "pages/tokens.py", {}, "The chips below: how the text becomes rows of the embedding table."),
    Lesson(
        "Fill mask",
        "pages/fill_mask.py",
        {"model": "default", "text": "She opened the [MASK] and walked into the room."},
        "Hide a word and see what the model guesses from the words on both sides.",
    ),
    Lesson(
        "Positions",
        "pages/embeddings.py",
        {"model": "default", "view": "Positional encoding"},
        "Every position adds a vector of its own to its token: without it attention cannot tell word order.",
    ),
    Lesson(
        "One head",
        "pages/attention.py",
        {"model": "default", "layer": "2", "head": "3"},
        "Rows are queries, columns the keys they read: this head of the English model reads the previous word.",
    ),
    Lesson(
        "Head view",
        "pages/attention.py",
        {"model": "default", "layer": "2", "head": "3,4", "view": "Head view"},
        "The same weights as lines, beside the head that reads the next word: hover a token to follow it.",
    ),
    Lesson(
        "What heads do",
        "pages/interpret.py",
        {"model": "default", "iview": "Head roles"},
        "Every head's role, measured over held-out sentences: previous word, next word, itself, broad.",
    ),
    Lesson(
        "Train a toy",
        "pages/train.py",
        {"task": "reverse", "hide": "architecture,text"},
        "Train a tiny encoder to reverse a sequence and watch its attention form the anti-diagonal.",
    ),
    Lesson(
        "Train on English",
        "pages/train.py",
        {"task": "mlm"},
        "Train a masked-language model on English: its loss falls below the unigram baseline.",
    ),
)


def start_here() -> None:
    """The path as numbered links, each with its sentence; open on the session's first visit."""
    state = st.session_state
    # Open through the whole first visit, however often the page reruns (typing in the sidebar must not
    # fold it away under the reader); folded from the next visit on.
    if state.get(PREVIOUS_PAGE_KEY) not in (None, state.get(PAGE_KEY)):
        state[SEEN_KEY] = True
    with st.expander("Start here: a path from tokens to attention to training", expanded=not state.get(SEEN_KEY)):
        for number, lesson in enumerate(LESSONS, start=1):
            row = st.container(horizontal=True, gap="small", vertical_alignment="center")
            row.page_link(lesson.page, label=f"{number}. {lesson.title}", query_params=lesson.query)
            row.caption(lesson.sentence)
