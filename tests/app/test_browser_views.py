"""What only a browser shows, on the default model and on MiniLM: titles clear of legends and key labels clear of
their neighbours, the head view's hover, and a "Start here" lesson link followed by a click."""

from __future__ import annotations

import re

import pytest

from bench.appserver import AppServer, browser_page, chromium_available, exceptions_on_page, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not chromium_available():
    pytest.fail("chromium is not installed: run `make test` (or apt-get install chromium)", pytrace=False)

# For every chart on the page: whether its title's box meets its legend's, and how many pairs of angled key
# labels sit closer across their slant than 0.8 of their font (a label's height across its slant).
LEGIBILITY_JS = """
() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].map(chart => {
  const box = e => e ? e.getBoundingClientRect() : null;
  const t = box(chart.querySelector('.gtitle')), l = box(chart.querySelector('g.legend'));
  const covered = !!(t && l && l.width > 0 && t.width > 0 &&
      !(t.right <= l.left || l.right <= t.left || t.bottom <= l.top || l.bottom <= t.top));
  let crowded = 0, angled = 0;
  for (const layer of chart.querySelectorAll('g.xaxislayer-above')) {
    const texts = [...layer.querySelectorAll('g.xtick text')]
      .filter(tx => (tx.getAttribute('transform') || '').includes('rotate') && tx.textContent);
    const xs = texts.map(tx => {
      const m = /translate\\(([-\\d.e]+)/.exec(tx.getAttribute('transform') || '');
      return (m ? parseFloat(m[1]) : 0) + parseFloat(tx.getAttribute('x') || 0);
    }).sort((a, b) => a - b);
    const font = texts.length ? parseFloat(getComputedStyle(texts[0]).fontSize) : 0;
    angled += texts.length;
    for (let i = 1; i < xs.length; i++) if ((xs[i] - xs[i - 1]) * Math.sin(Math.PI / 3) < 0.8 * font) crowded++;
  }
  const title = chart.querySelector('.gtitle');
  return {title: title ? title.textContent : '', covered, crowded, angled};
})
"""
VIEWS = [
    "model",
    "compare",
    "attention?view=Overview+grid",
    "attention?head=1,2,3,4",
    "interpret?iview=Query%2Fkey+map",
    "layernorm",
]


@pytest.fixture(scope="module")
def app():
    with AppServer() as server, browser_page() as page:
        page.set_default_timeout(120_000)
        yield server, page


def open_view(page, url: str) -> None:
    page.goto(url)
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    wait_idle(page, quiet_ms=1000)


@pytest.mark.parametrize("model", ["default", "minilm"])
def test_no_title_under_a_legend_and_no_key_label_on_its_neighbour(app, model):
    server, page = app
    checked = 0
    for view in VIEWS:
        open_view(page, f"{server.url}/{view}{'&' if '?' in view else '?'}model={model}")
        charts = page.evaluate(LEGIBILITY_JS)
        assert charts, view
        for chart in charts:
            assert not chart["covered"], (view, chart)
            assert chart["crowded"] == 0, (view, chart)
            checked += chart["angled"]
        assert exceptions_on_page(page) == [], view
    assert checked > 100  # key labels were there to check


def test_hovering_a_token_keeps_only_its_lines_in_the_head_view(app):
    server, page = app
    open_view(page, f"{server.url}/attention?model=default&head=1,2&view=Head+view")
    drawing = page.frame_locator('[data-testid="stIFrame"]').first.locator('[data-testid="head-view"]')
    drawing.wait_for()
    opacity_js = (
        "el => [...el.querySelectorAll('line.ln')].map(l => [l.classList.contains('q3'), "
        "l.classList.contains('k5'), parseFloat(getComputedStyle(l).strokeOpacity)])"
    )
    before = drawing.evaluate(opacity_js)
    assert len(before) > 20 and min(o for _, _, o in before) >= 0.15  # every line drawn before any hover
    drawing.locator("text.qt3").hover()  # the query "␣door"
    page.wait_for_timeout(400)  # the fade's transition
    after = drawing.evaluate(opacity_js)
    assert all(o <= 0.05 for mine, _, o in after if not mine) and all(o >= 0.15 for mine, _, o in after if mine)
    assert any(mine for mine, _, _ in after)
    drawing.locator("text.kt5").hover()  # a key: the lines into it
    page.wait_for_timeout(400)
    keyed = drawing.evaluate(opacity_js)
    assert all(o <= 0.05 for _, into, o in keyed if not into) and all(o >= 0.15 for _, into, o in keyed if into)
    page.mouse.move(0, 0)
    page.wait_for_timeout(400)
    assert drawing.evaluate(opacity_js) == before  # nothing hovered: every line back


def test_a_lesson_link_opens_its_view_over_earlier_choices(app):
    server, page = app
    open_view(page, f"{server.url}/attention?head=1")
    page.locator('[data-testid="stSidebarNav"] a', has_text="Tokens").first.click()
    page.get_by_role("heading", name="Tokens").first.wait_for()
    wait_idle(page)
    start = page.locator('[data-testid="stExpander"]').filter(has_text="Start here")
    if not start.get_by_role("link").first.is_visible():
        start.locator("summary").click()
    start.get_by_role("link", name=re.compile(r"^4\. One head")).click()
    page.get_by_role("heading", name="Attention").first.wait_for()
    wait_idle(page, quiet_ms=1000)
    # The lesson's head alone, once the chart has been drawn again (a loaded machine draws it late): the
    # earlier choice (head 1) never comes back.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] text')]
            .map(t => t.textContent).filter(t => /^Layer \\d+ · head \\d+$/.test(t)).join('|') === 'Layer 2 · head 3'"""
    )
    wait_idle(page, quiet_ms=1000)
    titles = page.locator('[data-testid="stPlotlyChart"] text', has_text=re.compile(r"^Layer \d+ · head \d+$"))
    assert titles.all_text_contents() == ["Layer 2 · head 3"]
    assert "layer=2" in page.url and "head=3" in page.url
    assert exceptions_on_page(page) == []
