"""URL state: values mirrored into the page's query string so that a link shares exactly a view, and the
fix that routes a deep link to a fresh server through ``app.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

URL_MAX_CHARS = 2000  # longer texts stay out of the URL (browsers and proxies cap address length)


def sync_url(name: str, value: str, default: str) -> None:
    """Mirrors one value into the URL's query string, leaving it out when it is the default (or too long
    to share in a link)."""
    params = st.query_params
    if value == default or len(value) > URL_MAX_CHARS:
        if name in params:
            del params[name]
    elif params.get(name) != value:
        params[name] = value


def url_value(name: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    """A value from the URL's query string, parsed, or ``default`` if it is missing or unreadable."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError):
        return default


def route_through_app() -> None:
    """Makes a deep link (``/attention?text=...``) to a freshly started server go through ``app.py``.

    Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until ``st.navigation``
    has run once in the process; until then a deep link runs the page file alone (no router, no wide
    layout, every file in ``pages/`` listed as a page). Clearing that flag and rerunning routes the
    request through ``app.py`` like every later one.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without the flag: nothing to fix
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
