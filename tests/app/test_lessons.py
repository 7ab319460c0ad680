"""The "Start here" path: every lesson link names a page of the app and opens it set up as its sentence says,
in a fresh session and in one where the user had chosen otherwise before following it."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from pages.common.lessons import LESSONS
from tests.app.test_pages import PAGES, app, assert_ok, head_panels

TITLES = {**PAGES, "pages/train.py": "Train"}


def test_the_first_page_offers_the_path_as_links():
    at = app()
    assert_ok(at, "Tokens")
    links = at.get("page_link")
    assert [link.proto.label for link in links] == [f"{n}. {lesson.title}" for n, lesson in enumerate(LESSONS, 1)]
    for link, lesson in zip(links, LESSONS, strict=True):
        assert link.proto.query_string == urlencode(lesson.query)
        assert link.proto.page_script_hash  # a page app.py registers (page_link refuses any other)
    assert 5 <= len(LESSONS) <= 10 and all(lesson.sentence.endswith(".") for lesson in LESSONS)
    assert at.expander[0].proto.expanded
    at.run()
    assert at.expander[0].proto.expanded  # a rerun of the page (a keystroke) leaves it open under the reader
    at.switch_page("pages/attention.py").run()
    at.switch_page("pages/tokens.py").run()
    assert not at.expander[0].proto.expanded  # folds away from the next visit on


def check_lesson(at: AppTest, lesson) -> None:
    assert_ok(at, TITLES[lesson.page])
    query = lesson.query
    if query.get("model") == "default":
        assert any("checkpoint default" in m.value for m in at.sidebar.markdown)
    if "text" in query:
        assert at.text_area(key="sidebar_text").value == query["text"]
    if lesson.page == "pages/attention.py":
        heads = [int(h) for h in query["head"].split(",")]
        assert head_panels(at) == [f"Layer {query['layer']} · head {h}" for h in heads]
        if "view" in query:
            assert at.segmented_control(key="attention_view").value == query["view"]
            assert at.get("iframe")  # the head view
    if lesson.page == "pages/embeddings.py":
        assert at.segmented_control(key="embeddings_view").value == query["view"]
    if lesson.page == "pages/interpret.py":
        assert at.segmented_control(key="interpret_view").value == query["iview"]
    if lesson.page == "pages/train.py":
        assert at.selectbox(key="train_task").value == query["task"]
        hidden = query.get("hide", "")
        assert ("architecture" in hidden) == (not [w for w in at.select_slider if w.key == "train_layers"])
    if lesson.page == "pages/fill_mask.py":
        assert at.get("plotly_chart")  # the guesses for the lesson's [MASK]


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.title for lesson in LESSONS])
def test_every_lesson_opens_its_view(lesson):
    at = app(lesson.page, **lesson.query)
    check_lesson(at, lesson)


@pytest.mark.parametrize("lesson", [lesson for lesson in LESSONS if lesson.query], ids=lambda lesson: lesson.title)
def test_a_lesson_followed_later_wins_over_earlier_choices(lesson):
    """Choices are kept for the session; a lesson link the session did not write applies its own anyway."""
    at = app("pages/attention.py", model="minilm", text="Something else entirely.")
    at.pills(key="attention_layers").set_value([1]).run()
    at.pills(key="attention_heads").set_value([1, 2]).run()
    at.switch_page("pages/embeddings.py").run()
    at.segmented_control(key="embeddings_view").set_value("Projection (PCA)").run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train_task").set_value("copy").run()
    for key in list(at.query_params):
        del at.query_params[key]
    at.query_params.update(lesson.query)
    at.switch_page(lesson.page).run()
    check_lesson(at, lesson)
