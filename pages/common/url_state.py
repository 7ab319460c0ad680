"""URL state: every choice a page offers is kept for the session and mirrored into the page's query string,
so a link shares exactly a view; plus the fix that routes a deep link to a fresh server through ``app.py``,
and the rerun that rebuilds a view from its link on the replica a browser reconnects to.

One call per widget, just before it::

    layers = kept("attention_layers", [1], "layer", INTS, fix=lambda v: [x for x in v if x in options] or [1])
    st.pills("Layers", options, key="attention_layers", selection_mode="multi")

``kept`` seeds the widget from the link on a session's first visit, remembers its value while the widget
is not drawn (another page, an empty text, a view that is closed) and writes it back to the link, left out
while it is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

URL_MAX_CHARS = 2000  # longer texts stay out of the URL (browsers and proxies cap address length)


@dataclass(frozen=True)
class Codec:
    """How a value is written into a link and read back (``decode`` raises ``ValueError`` on bad input)."""

    encode: Callable[[Any], str]
    decode: Callable[[str], Any]


def _bool(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError(raw)
    return raw == "1"


def _ints(raw: str) -> list[int]:
    return [int(v) for v in raw.split(",") if v.strip()]


def _optional(raw: str) -> str | None:
    return raw or None


TEXT = Codec(str, str)
OPTIONAL_TEXT = Codec(lambda v: "" if v is None else str(v), _optional)  # a control with nothing chosen
INT = Codec(str, int)
FLOAT = Codec(lambda v: f"{float(v):g}", float)
BOOL = Codec(lambda v: "1" if v else "0", _bool)
INTS = Codec(lambda v: ",".join(str(x) for x in sorted(v)), _ints)
TEXTS = Codec(lambda v: ",".join(sorted(v)), lambda raw: [v for v in raw.split(",") if v])


_SYNCED_KEY = "_link_synced"  # query parameter -> the text this session last wrote there (None: left out)
_UNSEEN = object()


def sync_url(name: str, value: str, default: str) -> None:
    """Mirrors one value into the URL's query string, leaving it out when it is the default (or too long
    to share in a link)."""
    params = st.query_params
    synced = st.session_state.setdefault(_SYNCED_KEY, {})
    if value == default or len(value) > URL_MAX_CHARS:
        if name in params:
            del params[name]
        synced[name] = None
    else:
        if params.get(name) != value:
            params[name] = value
        synced[name] = value


def link_value(name: str) -> str | None:
    """The link's text for ``name`` when it is news to this session (a link just opened, a lesson link
    followed, the address edited), or None while the link holds what this session wrote there itself. A
    value the user has just changed is never undone by the old link: that still reads as written here."""
    raw = st.query_params.get(name)
    if raw is None or raw == st.session_state.get(_SYNCED_KEY, {}).get(name, _UNSEEN):
        return None
    return raw


def url_value(name: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    """A value from the URL's query string, parsed, or ``default`` if it is missing or unreadable."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (ValueError, TypeError, KeyError, IndexError):
        return default


# Values a link asked for that a page could not use: widget key -> a sentence naming the parameter and why.
# Each stays on its page (said at the top, under the link notice) until the user changes that choice.
LINK_PROBLEMS_KEY = "_link_problems"
_NOTICE_KEY = "_link_notice"  # this run's notice: (an st.empty at the top of the page, the sentences it shows)


def link_notice() -> None:
    """Reserves the place at the top of the page where values a link got wrong are listed (``sidebar``
    calls it first thing on every page, so every page reports them the same way)."""
    st.session_state[_NOTICE_KEY] = (st.empty(), [])


def report_link_problem(key: str, sentence: str | None = None) -> None:
    """Records (with ``sentence``) or repeats (without) the problem of the link's value for ``key``, and
    lists it in this run's notice, which stays on screen (not a toast that vanishes)."""
    problems = st.session_state.setdefault(LINK_PROBLEMS_KEY, {})
    if sentence is not None:
        problems[key] = sentence
    notice = st.session_state.get(_NOTICE_KEY)
    if key not in problems or notice is None:
        return
    slot, shown = notice
    if problems[key] not in shown:
        shown.append(problems[key])
        slot.warning(
            "Some values in this link could not be used; the page shows its defaults for them:\n"
            + "\n".join(f"- {line}" for line in shown),
            icon=":material/link_off:",
        )


def link_problem_resolved(key: str) -> None:
    """The user changed the choice a link got wrong: its note goes."""
    st.session_state.get(LINK_PROBLEMS_KEY, {}).pop(key, None)


def _store(key: str) -> str:
    # Streamlit drops a widget's own key at the end of any run that does not draw the widget, so the value
    # lives under a second key that only this module writes.
    return f"_kept_{key}"


def kept(
    key: str,
    default: Any,
    param: str | None = None,
    codec: Codec = TEXT,
    fix: Callable[[Any], Any] | None = None,
) -> Any:
    """Prepares the widget with ``key`` (call it just before the widget) and returns the value it will show.

    - On the session's first visit the value comes from the link's ``param`` (if given and readable),
      else ``default``; so it does later whenever the link carries a value this session did not write
      there (a lesson link followed, ``link_value``). A value the link got wrong is listed at the top of
      the page (``link_notice``) until the user changes this choice.
    - A change the user made is kept even when later runs do not draw the widget.
    - ``fix(value)`` adapts a value to the current options (fewer heads, a shorter text); if it raises
      ``ValueError``, the default is used.
    - With ``param``, the value is written back to the link (left out while it equals ``default``).
    """
    state, store = st.session_state, _store(key)
    if key in state:  # drawn on the last run: the user may have changed it
        if store in state and state[key] != state[store]:
            link_problem_resolved(key)
        state[store] = state[key]
    elif store not in state:
        # This page's first run in the session reads the link as it stands, also a value another page of
        # this session wrote under the same name (the Attention page's layer and query for Step through);
        # one this control cannot read is that page's business, not a problem with the link.
        state[store] = url_value(param, default, codec.decode) if param else default
    raw = link_value(param) if param else None  # a link this session did not write wins over what was kept
    if raw is not None:
        try:
            state[store] = codec.decode(raw)
            link_problem_resolved(key)
        except (ValueError, TypeError, KeyError, IndexError):
            report_link_problem(key, f"**{param}={raw}** is not a value this control takes.")
            raw = None
    value = state[store]
    if fix is not None:
        try:
            value = fix(value)
        except (ValueError, TypeError, IndexError, KeyError):
            if raw is not None:
                report_link_problem(key, f"**{param}={raw}** is not one of the choices this page offers.")
            value = default
    report_link_problem(key)  # a problem recorded on an earlier run stays listed
    # Handed to the widget on every run: a widget whose options or labels change (a head pill gaining a
    # role badge) is a new widget to Streamlit, and would otherwise start from its empty default.
    state[store] = state[key] = value
    if param is not None:
        sync_url(param, codec.encode(value), codec.encode(default))
    return value


def choose(key: str, value: Any) -> None:
    """Sets the choice of a widget that another page draws, before going there (a button that opens a view
    on one head): the widget shows ``value`` when it is next drawn, and its link says so."""
    st.session_state.pop(key, None)  # a value the widget left behind would win over the store
    st.session_state[_store(key)] = value


def one_of(options: Any) -> Callable[[Any], Any]:
    """A ``fix`` for a single choice: the value if it is still an option, else ``ValueError``."""
    options = list(options)

    def fix(value: Any) -> Any:
        if value not in options:
            raise ValueError(value)
        return value

    return fix


def some_of(options: Any) -> Callable[[list], list]:
    """A ``fix`` for a multiple choice: the values that are still options (``ValueError`` if there were
    some and none is left, e.g. heads of a bigger model; an empty choice the user made stays empty)."""
    options = list(options)

    def fix(values: list) -> list:
        kept_values = [v for v in values if v in options]
        if values and not kept_values:
            raise ValueError(values)
        return kept_values

    return fix


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


# Far longer than anyone stays on a page without a click: the fragment is there for what its presence
# does on a reconnection (see ``rerun_on_reconnect``), not for its ticks.
RECONNECT_FRAGMENT_EVERY_S = 3600.0


def _reconnect_anchor() -> None:
    """Draws nothing."""


def rerun_on_reconnect() -> None:
    """Makes the browser rerun the page as soon as its websocket reconnects, even on an idle page.

    Streamlit's frontend asks for a rerun after reconnecting only when a script was running or the page
    has a fragment that reruns by itself (``run_every``). Behind a proxy with several replicas, a browser
    whose replica died reconnects to another one, which has no session for it: without a rerun the page
    stays as it was drawn, and the user's next click starts a new session from the link and is lost
    (``kept`` seeds every widget from the link). With this fragment the new replica runs the page at once,
    from the link and the browser's widget values, and the next click works as usual.
    """
    st.fragment(run_every=RECONNECT_FRAGMENT_EVERY_S)(_reconnect_anchor)()
