"""What every page shares, one module per concern:

- ``resources``: built once per process and shared by all sessions, never mutated (tokenizers, compiled
  engines, the default and pretrained models, per-model analyses);
- ``session``: per-user state (which model the pages show, a finished training's model);
- ``url_state``: every choice kept for the session and in the link (``kept``), and routing a deep link
  through ``app.py``;
- ``text``: the shared sentence, tokenized for the current model by ``explorer.pipeline``;
- ``widgets``: the page opening, the sidebar, charts with downloads, the window over long inputs;
- ``attention_views`` / ``embedding_views``: the views the Attention and Embeddings pages open;
- ``train_controls``, ``train_views``, ``checkpoints``: the Train page's settings and buttons, its live
  views, and checkpoint download/upload.

Pages import from here; anything a user can change lives in ``st.session_state``.
"""

from pages.common.resources import (
    WarmupReport,
    default_bundle,
    get_engine,
    get_tokenizer,
    head_roles_if_ready,
    model_head_roles,
    model_pos_probe,
    pretrained_bundle,
    warmup_report,
)
from pages.common.session import (
    CHOICE_KEY,
    MODEL_CHOICES,
    MODEL_KEY,
    TRAINER_KEY,
    current_bundle,
    model_choice,
    publish_trained,
    set_bundle,
)
from pages.common.text import (
    DEFAULT_TEXT,
    TEXT_KEY,
    Sentence,
    current_sentence,
    current_text,
    model_token_labels,
    prepare,
    text_box,
)
from pages.common.url_state import (
    BOOL,
    FLOAT,
    INT,
    INTS,
    OPTIONAL_TEXT,
    TEXT,
    TEXTS,
    URL_MAX_CHARS,
    Codec,
    kept,
    one_of,
    route_through_app,
    some_of,
    sync_url,
    url_value,
)
from pages.common.widgets import WINDOW, chart, open_page, plotly_config, position_picker, sidebar, window_control

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "INTS",
    "OPTIONAL_TEXT",
    "TEXT",
    "TEXTS",
    "Codec",
    "kept",
    "one_of",
    "open_page",
    "some_of",
    "CHOICE_KEY",
    "DEFAULT_TEXT",
    "MODEL_CHOICES",
    "MODEL_KEY",
    "TEXT_KEY",
    "TRAINER_KEY",
    "URL_MAX_CHARS",
    "WINDOW",
    "Sentence",
    "WarmupReport",
    "chart",
    "current_bundle",
    "current_sentence",
    "current_text",
    "default_bundle",
    "get_engine",
    "get_tokenizer",
    "head_roles_if_ready",
    "model_choice",
    "model_head_roles",
    "model_pos_probe",
    "model_token_labels",
    "plotly_config",
    "position_picker",
    "prepare",
    "pretrained_bundle",
    "publish_trained",
    "route_through_app",
    "set_bundle",
    "sidebar",
    "sync_url",
    "text_box",
    "url_value",
    "warmup_report",
    "window_control",
]
