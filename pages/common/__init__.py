"""What every page shares, one module per concern:

- ``resources``: built once per process and shared by all sessions, never mutated (tokenizers, compiled
  engines, the default and pretrained models, per-model analyses);
- ``server_models``: the pretrained models a server offers by folder or Hub id (``EXPLORER_MODELS``, or
  typed in a single-user run), each loaded once in the background and shared;
- ``session``: per-user state (which model the pages show, a finished training's model);
- ``url_state``: every choice kept for the session and in the link (``kept``), and routing a deep link
  through ``app.py``;
- ``text``: the shared sentence, tokenized for the current model by ``explorer.pipeline``;
- ``widgets``: the page opening, the sidebar, charts with downloads, the window over long inputs;
- ``attention_views`` / ``embedding_views``: the views the Attention and Embeddings pages open;
- ``train_controls``, ``train_runs``, ``train_views``, ``train_replay``, ``checkpoints``: the Train
  page's settings and buttons, this session's runs (and the run in the link), its live views, the replay
  of the snapshots, and checkpoint download/upload;
- ``lessons``: the "Start here" path of lesson links on the first page;
- ``jobs``: slow first computations in the background, with a progress bar that follows them.

Pages import what they use from here (this file exports exactly that; the modules of this package import
each other directly). Anything a user can change lives in ``st.session_state``.
"""

from pages.common.jobs import wait_for
from pages.common.lessons import start_here
from pages.common.resources import (
    get_engine,
    get_tokenizer,
    head_roles_if_ready,
    model_head_roles,
    pos_probe_job,
    warmup_report,
)
from pages.common.session import TRAINER_KEY, current_bundle
from pages.common.text import TEXT_KEY, current_sentence, current_text, prepare
from pages.common.url_state import BOOL, FLOAT, INT, INTS, OPTIONAL_TEXT, TEXT, choose, kept, one_of, some_of
from pages.common.widgets import WINDOW, chart, open_page, position_picker, sidebar, window_control

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "INTS",
    "OPTIONAL_TEXT",
    "TEXT",
    "TEXT_KEY",
    "TRAINER_KEY",
    "WINDOW",
    "chart",
    "choose",
    "current_bundle",
    "current_sentence",
    "current_text",
    "get_engine",
    "get_tokenizer",
    "head_roles_if_ready",
    "kept",
    "model_head_roles",
    "pos_probe_job",
    "one_of",
    "open_page",
    "position_picker",
    "prepare",
    "sidebar",
    "some_of",
    "start_here",
    "wait_for",
    "warmup_report",
    "window_control",
]
