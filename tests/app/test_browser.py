"""The running app in a real browser: `streamlit run app.py` driven by headless Debian chromium.

Types a sentence, checks the tokens and the URL, switches pages, toggles a head on the Attention page and
checks the charts that rendered, trains a model with Step, Play and Pause (on one screen at 1400 x 1000,
watched while it runs), takes a run up again after a reload, and round-trips a checkpoint.
"""

from __future__ import annotations

import math
import re
import time
from urllib.parse import quote

import pytest

from bench.appserver import (
    AppServer,
    browser_page,
    chromium_available,
    exceptions_on_page,
    wait_for_loss_curve,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not chromium_available():  # `make test` installs it; a bare `pytest` on a machine without it says so
    pytest.fail("chromium is not installed: run `make test` (or apt-get install chromium)", pytrace=False)

SENTENCE = "The dogs near the table run fast."


@pytest.fixture(scope="module")
def app():
    with AppServer() as server:
        with browser_page() as page:
            page.set_default_timeout(90_000)
            # The first request of a fresh server is a deep link: Streamlit would run the page file alone
            # (no router) on the first run of an app with a pages/ folder unless the app reroutes it.
            page.goto(f"{server.url}/attention?head=1,3")
            page.get_by_role("heading", name="Attention").wait_for()
            page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
            wait_idle(page)
            nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
            assert "Embeddings & positions" in nav and "common" not in nav, nav
            head_titles(page).nth(1).wait_for()  # plotly draws after Streamlit is idle
            assert head_titles(page).count() == 2  # the link's head selection survived the rerouting
            go_to(page, "Tokens")
            yield server, page


def head_titles(page):
    return page.locator('[data-testid="stPlotlyChart"] text', has_text=re.compile(r"^Layer \d+ · head \d+$"))


def head_button(page, name: str):
    """A head pill (``"H2"``) of the Attention page; its label may carry a role badge (``"H2 ← prev"``)."""
    heads = page.locator('[data-testid="stButtonGroup"]').filter(has_text="H1").first
    return heads.get_by_role("button", name=re.compile(rf"^{name}\b"))


def view_button(page, name: str):
    """An option of a segmented control (the Attention page's "More views"; a radio to assistive tech)."""
    return page.locator('[data-testid="stButtonGroup"] button', has_text=name).first


def charts(page, text: str | None = None):
    locator = page.locator('[data-testid="stPlotlyChart"]')
    return locator.filter(has_text=text) if text else locator


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for()
    wait_idle(page)


def test_typing_a_sentence_updates_tokens_and_url(app):
    _, page = app
    box = page.get_by_label("Text")
    box.fill(SENTENCE)
    box.press("Control+Enter")
    page.get_by_text("␣dogs").first.wait_for()
    wait_idle(page)
    assert "text=" in page.url and "dogs" in page.url
    assert charts(page).count() >= 1
    assert exceptions_on_page(page) == []


def test_attention_page_heads_toggle(app):
    _, page = app
    go_to(page, "Attention")
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    titles = head_titles(page)
    # The fixture's link chose heads 1 and 3; the choice stays for the session.
    assert titles.count() == 2 and charts(page, "Layer 1 · head 3").count() == 1
    head_button(page, "H2").click()
    wait_idle(page)
    assert charts(page, "Layer 1 · head 2").count() == 1
    head_button(page, "H3").click()
    wait_idle(page)
    assert charts(page, "Layer 1 · head 3").count() == 0
    assert titles.count() == 2
    assert re.search(r"head=1(%2C|,)2(&|$)", page.url), page.url  # the selection is in the link
    # Heatmap axes carry the sentence's tokens.
    assert "␣dogs" in charts(page, "Layer 1 · head 1").first.inner_text()
    assert exceptions_on_page(page) == []


@pytest.mark.parametrize(
    "title",
    [
        "Fill mask",
        "Embeddings & positions",
        "Step through",
        "Interpret",
        "Layer norm & residual stream",
        "Model",
        "Compare",
        "Tokens",
    ],
)
def test_every_page_renders(app, title):
    _, page = app
    go_to(page, title)
    assert exceptions_on_page(page) == []
    if title not in ("Model", "Fill mask"):  # the sentence has no [MASK]: Fill mask explains instead
        page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    assert page.get_by_label("Text").input_value() == SENTENCE  # the sentence follows every page


def test_empty_text_gives_a_message_not_a_traceback(app):
    _, page = app
    go_to(page, "Attention")
    box = page.get_by_label("Text")
    box.fill("")
    box.press("Control+Enter")
    wait_idle(page)
    assert exceptions_on_page(page) == []
    assert page.locator('[data-testid="stAlert"]').count() >= 1
    box.fill(SENTENCE)
    box.press("Control+Enter")
    wait_idle(page)


def metric(page, label: str) -> str:
    return (
        page.locator('[data-testid="stMetric"]')
        .filter(has_text=label)
        .first.locator('[data-testid="stMetricValue"]')
        .inner_text()
    )


def test_training_steps_plays_pauses_and_offers_the_model_in_the_picker(app):
    _, page = app
    go_to(page, "Train")
    steps = page.get_by_label("Steps")
    steps.fill("5000")
    steps.press("Enter")
    wait_idle(page)
    assert "steps=5000" in page.url  # every setting is in the link
    page.get_by_role("button", name="Step", exact=True).click()
    page.get_by_text("Step 1 of 5000 · paused").wait_for(timeout=180_000)  # exactly one update, shown
    wait_idle(page)
    assert metric(page, "Step") == "1"
    page.get_by_role("button", name="Play", exact=True).click()
    # The loss curve is drawn live: wait until its line has several points.
    wait_for_loss_curve(page, 3)
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_role("button", name="Play", exact=True).wait_for()
    wait_idle(page)
    paused = int(metric(page, "Step"))
    assert 1 < paused < 5000
    assert page.get_by_text(re.compile(r"Step \d+ of 5000 · paused")).count() == 1
    assert exceptions_on_page(page) == []
    go_to(page, "Attention")
    sidebar = page.locator('[data-testid="stSidebar"]')
    # The page keeps its model; the paused run's waits in the picker, and the sidebar says so.
    assert "Model: trained here" not in sidebar.inner_text()
    assert f"Trained here: reverse, step {paused} is ready" in sidebar.inner_text()
    pick_model(page, f"Trained here: reverse, step {paused}$")
    assert f"Model: trained here: reverse, step {paused}" in sidebar.inner_text()
    assert "is ready" not in sidebar.inner_text()
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    assert exceptions_on_page(page) == []


STEP_CHARTS = 15  # at least: a picture per step of a layer (16 post-LN, 17 with a mask step)


def step_through_charts(page) -> int:
    """Waits for the Step through page's last picture, then counts its charts."""
    charts(page, "numbers").last.locator(".main-svg").first.wait_for()
    wait_idle(page)
    return charts(page).count()


def test_a_snapshot_of_the_training_steps_through(app):
    _, page = app
    go_to(page, "Train")
    scrubber = page.locator('[data-testid="stSlider"]').filter(has_text="Snapshot step").get_by_role("slider")
    scrubber.focus()
    scrubber.press("Home")  # the first snapshot: an early, barely trained model
    wait_idle(page)
    use = page.get_by_role("button", name=re.compile(r"Use the model of step \d+ on every page"))
    step = re.search(r"step (\d+)", use.inner_text()).group(1)
    use.click()
    wait_idle(page)
    go_to(page, "Step through")
    assert f"step {step}" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert step_through_charts(page) >= STEP_CHARTS
    assert exceptions_on_page(page) == []


# What a person sees of a live run, read from the page: the loss chart's y-axis (a log axis's range is in
# log10 units) with every finite loss it plots and the baseline line's value, the visible "Watch attention
# form" scrubber (a replaced one stays in the page, zero-sized, until its fragment finishes), and where the
# buttons, the loss chart and the live attention are on the screen.
LIVE_TRAIN_JS = """
() => {
  const box = key => {
    const found = document.querySelector('.st-key-' + key);
    if (!found) return null;
    const r = found.getBoundingClientRect();
    return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
  };
  const loss = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
    .find(gd => gd._fullLayout && gd._fullLayout.title && gd._fullLayout.title.text === 'Loss');
  const slider = [...document.querySelectorAll('[data-testid="stSlider"]')]
    .find(s => s.innerText.includes('Snapshot step') && s.getBoundingClientRect().height > 0);
  const input = slider && slider.querySelector('input[type=range]');
  return {
    axis: loss ? {type: loss._fullLayout.yaxis.type, range: loss._fullLayout.yaxis.range} : null,
    losses: loss ? loss._fullData.flatMap(d => [...(d.y || [])]).filter(v => v != null && isFinite(v) && v > 0) : [],
    baselines: loss ? (loss._fullLayout.shapes || []).map(s => s.y0) : [],
    scrubber: input ? {value: Number(input.value), max: Number(input.max)} : null,
    boxes: {play: box('train_play'), step: box('train_step'), reset: box('train_reset'),
            loss: box('train_loss_chart'), live: box('train_live_attention')},
    scrolled: document.querySelector('[data-testid="stMain"]').scrollTop,
    screen: {width: window.innerWidth, height: window.innerHeight},
  };
}
"""


def assert_on_one_screen(live: dict) -> None:
    """Playground's promise: the buttons, the loss chart and the live attention are all in the window
    together, without scrolling."""
    assert live["scrolled"] == 0, live["scrolled"]
    for name, box in live["boxes"].items():
        assert box is not None, name
        assert box["top"] >= 0 and box["left"] >= 0, (name, box)
        assert box["bottom"] <= live["screen"]["height"] and box["right"] <= live["screen"]["width"], (name, box)
        assert box["bottom"] - box["top"] > 30, (name, box)  # drawn, not an empty placeholder


def assert_loss_axis_fits(live: dict) -> None:
    """The log axis holds every plotted loss and the baseline, and they fill at least half of it: a label
    placed in the wrong units once stretched it to 1e7 and flattened the curve at the bottom."""
    assert live["axis"]["type"] == "log"
    low, high = live["axis"]["range"]  # log10 units
    values = [math.log10(v) for v in live["losses"] + live["baselines"]]
    assert low <= min(values) and max(values) <= high, (live["axis"], min(values), max(values))
    assert max(values) - min(values) >= 0.5 * (high - low), (live["axis"], min(values), max(values))


def complete(live: dict) -> bool:
    """Every part the one-screen layout promises is on the page."""
    return all(box is not None for box in live["boxes"].values())


def play_and_watch(page, url: str, until, timeout_s: float = 240.0) -> list[dict]:
    """Opens ``url``, presses Play and reads the live page every half second until ``until(live)``; then
    presses Pause. Returns every reading."""
    page.goto(url)
    page.get_by_role("heading", name="Train").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Play", exact=True).click()
    readings, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        live = page.evaluate(LIVE_TRAIN_JS)
        follow = page.get_by_role("button", name="Follow live")
        live["follow_disabled"] = follow.first.is_disabled() if follow.count() else None
        readings.append(live)
        if until(live):
            break
        page.wait_for_timeout(500)
    # Stops this session's run (the next page load is a new session). Not waited for: on a loaded machine the
    # worker, at idle priority, may take long to answer, and nothing here depends on the pause.
    page.get_by_role("button", name="Pause", exact=True).click()
    assert until(readings[-1]), readings[-1]
    return readings


def test_the_live_loss_axis_and_the_scrubber_stay_on_the_run(app):
    server, shared_page = app
    text = f"text={quote(SENTENCE)}"
    # A context of its own: a new session, whose training does not touch the other tests' session.
    context = shared_page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(180_000)
        # A toy task, for several snapshots: at every reading the scrubber is on the newest one and nobody
        # needs to press "Follow live"; the loss axis fits the curve as it falls by orders of magnitude.
        readings = play_and_watch(
            page,
            f"{server.url}/train?{text}&task=reverse&steps=5000",
            lambda live: live["scrubber"] is not None and live["scrubber"]["max"] >= 5 and complete(live),
        )
        for live in readings:
            if live["scrubber"] is not None:
                assert live["scrubber"]["value"] == live["scrubber"]["max"], live
                assert live["follow_disabled"] is True, live
            if len(live["losses"]) >= 2:
                assert_loss_axis_fits(live)
            if complete(live):  # from the first snapshot on, every reading
                assert_on_one_screen(live)
        # Masked tokens on English, whose chart marks the unigram baseline.
        readings = play_and_watch(
            page,
            f"{server.url}/train?{text}&task=mlm&steps=600",
            lambda live: len(live["losses"]) >= 3 and live["baselines"] and complete(live),
        )
        for live in readings:
            if len(live["losses"]) >= 2 and live["baselines"]:
                assert_loss_axis_fits(live)
            if complete(live):
                assert_on_one_screen(live)
        assert exceptions_on_page(page) == []
    finally:
        context.close()


def progress_text(page) -> str:
    return page.locator('[data-testid="stProgress"]').first.inner_text()


def test_a_reloaded_page_takes_up_its_paused_run_and_a_lost_run_starts_again(app):
    server, shared_page = app
    context = shared_page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(180_000)
        page.goto(f"{server.url}/train?task=reverse&steps=5000&seed=4")
        page.get_by_role("heading", name="Train").wait_for()
        wait_idle(page)
        page.get_by_role("button", name="Play", exact=True).click()
        wait_for_loss_curve(page, 3)
        page.get_by_role("button", name="Pause", exact=True).click()
        page.get_by_role("button", name="Play", exact=True).wait_for()
        page.get_by_text(re.compile(r"Step \d+ of 5000 · paused")).wait_for()
        wait_idle(page)
        paused = int(metric(page, "Step"))
        assert "run=" in page.url
        page.reload()  # a new session: the link's run is taken up, where it stood
        page.get_by_role("heading", name="Train").wait_for()
        page.get_by_text(f"Step {paused} of 5000 · paused").wait_for()
        wait_idle(page)
        assert page.get_by_label("Seed").input_value() == "4" and "run=" in page.url
        page.get_by_role("button", name="Play", exact=True).click()  # Play continues the same run
        deadline = time.monotonic() + 180
        while int(re.search(r"Step (\d+)", progress_text(page)).group(1)) <= paused + 5:
            assert time.monotonic() < deadline, progress_text(page)
            page.wait_for_timeout(500)
        page.get_by_role("button", name="Pause", exact=True).click()
        page.get_by_role("button", name="Play", exact=True).wait_for()
        assert exceptions_on_page(page) == []

        # A run this server does not have (a replica that died, a run cleared long ago): said, with the
        # settings of the link, and Play starts it again.
        page.goto(f"{server.url}/train?task=copy&steps=300&run=no-such-run")
        page.get_by_role("heading", name="Train").wait_for()
        page.get_by_text("The run in this link is no longer on the server").wait_for()
        wait_idle(page)
        assert page.get_by_label("Steps").input_value() == "300"
        assert page.locator('[data-testid="stCaptionContainer"]').filter(has_text="copy:").count() == 1
        page.get_by_role("button", name="Play", exact=True).click()
        page.get_by_text(re.compile(r"Step \d+ of 300")).wait_for()
        page.wait_for_function("() => !window.location.search.includes('run=no-such-run')")
        assert re.search(r"run=[\w-]{12}", page.url), page.url
        assert page.get_by_text("The run in this link is no longer on the server").count() == 0
        assert exceptions_on_page(page) == []
    finally:
        context.close()


def test_a_downloaded_checkpoint_opens_again_and_a_text_file_trains(app, tmp_path):
    server, page = app
    go_to(page, "Train")
    page.get_by_role("tab", name="Checkpoints").click()
    wait_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download checkpoint").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert re.fullmatch(r"encoder-\w+\.safetensors", saved.name) and saved.stat().st_size > 10_000
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Open a checkpoint")
    uploader.locator('input[type="file"]').set_input_files(str(saved))
    page.get_by_text(f"Loaded {saved.name}: every page now shows this model.").wait_for()
    wait_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert f"Model: uploaded {saved.name}" in sidebar.inner_text()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    uploader.locator('input[type="file"]').set_input_files(str(broken))
    page.locator('[data-testid="stAlert"]').filter(has_text="not a checkpoint of this app").first.wait_for()
    assert f"Model: uploaded {saved.name}" in sidebar.inner_text()  # a bad file changes nothing

    # Training on a text of the user's own: a lesson link sets the masked-token task, then one Step.
    page.goto(f"{server.url}/train?task=mlm&steps=100")
    page.get_by_role("heading", name="Train").wait_for()
    wait_idle(page)
    story = tmp_path / "story.txt"
    story.write_text("The cat sat on the mat and looked at the garden. " * 300, encoding="utf-8")
    page.get_by_role("button", name="Your own text").click()  # behind a button: it would take a row
    texts = page.locator('[data-testid="stFileUploader"]').filter(has_text="your own text")
    texts.locator('input[type="file"]').set_input_files(str(story))
    wait_idle(page)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Step", exact=True).click()
    page.get_by_text("Trained here: mlm on the uploaded text, step 1 is ready").wait_for(timeout=180_000)
    assert exceptions_on_page(page) == []


def set_text(page, text: str) -> None:
    box = page.get_by_label("Text")
    box.fill(text)
    box.press("Control+Enter")
    wait_idle(page)


def pick_model(page, name: str) -> None:
    """Chooses a model in the sidebar's picker (its option text contains ``name``)."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=re.compile(name)).click()
    wait_idle(page)


def test_fill_mask_guesses_a_typed_mask(app):
    _, page = app
    pick_model(page, "English")  # the training test above made the user's toy model the one shown
    go_to(page, "Fill mask")
    set_text(page, "She opened the [MASK] and walked into the room.")
    page.get_by_text("Best guess").wait_for()
    assert charts(page, "[MASK] #1").count() == 1
    assert exceptions_on_page(page) == []
    set_text(page, SENTENCE)


def test_the_model_picker_switches_every_page_to_the_pretrained_encoder(app):
    _, page = app
    go_to(page, "Tokens")
    sidebar = page.locator('[data-testid="stSidebar"]')
    pick_model(page, "MiniLM")
    page.get_by_text("[CLS]").first.wait_for()  # WordPiece tokens, with BERT's markers
    assert "model=minilm" in page.url
    go_to(page, "Attention")
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    assert "Model: pretrained: all-MiniLM-L6-v2" in sidebar.inner_text()
    assert exceptions_on_page(page) == []
    pick_model(page, "English")


def test_step_through_on_both_models_and_from_the_attention_page(app):
    server, page = app
    # The Attention page outlines the chosen query row and opens it on the Step through page.
    page.goto(f"{server.url}/attention?text={SENTENCE}&layer=2&head=3&query=2")
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    wait_idle(page)
    assert charts(page, "Layer 2 · head 3").locator(".shapelayer path").count() == 1  # the outlined row
    page.get_by_role("button", name=re.compile(r"Step through row 2 of layer 2 · head 3")).click()
    page.get_by_role("heading", name="Step through").wait_for()
    assert step_through_charts(page) >= STEP_CHARTS
    assert "Scores become weights" in page.locator('[data-testid="stMain"]').inner_text()
    assert "␣dogs" in charts(page, "every token's key").first.inner_text()  # keys named by token
    assert re.search(r"layer=2.*head=3|head=3.*layer=2", page.url) and "query=2" in page.url, page.url
    page.get_by_text("Causal mask").click()
    charts(page, "grey keys get").first.wait_for()  # the mask becomes a step of its own
    assert exceptions_on_page(page) == []
    assert "causal=1" in page.url
    page.get_by_role("button", name="See this row on the Attention page").click()
    page.get_by_role("heading", name="Attention").wait_for()
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    wait_idle(page)
    assert head_titles(page).all_text_contents() == ["Layer 2 · head 3"]
    assert exceptions_on_page(page) == []
    # MiniLM, from a link.
    page.goto(f"{server.url}/step_through?model=minilm&text={SENTENCE}&layer=6&head=12&query=3")
    page.get_by_role("heading", name="Step through").wait_for()
    assert step_through_charts(page) >= STEP_CHARTS
    assert "all-MiniLM-L6-v2" in page.locator('[data-testid="stSidebar"]').inner_text()
    assert "[CLS]" in charts(page, "every token's key").first.inner_text()
    assert exceptions_on_page(page) == []
    page.goto(f"{server.url}/attention?text={SENTENCE}")  # back to the defaults for the tests that follow
    page.get_by_role("heading", name="Attention").wait_for()
    wait_idle(page)


def test_an_empty_text_keeps_the_chosen_layers_and_heads(app):
    _, page = app
    go_to(page, "Attention")
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    before = head_titles(page).all_text_contents()
    set_text(page, "")
    assert page.locator('[data-testid="stAlert"]').count() >= 1
    set_text(page, "A new sentence about the old dogs.")
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    assert head_titles(page).all_text_contents() == before and before
    assert "Choose at least one" not in page.locator('[data-testid="stMain"]').inner_text()
    assert exceptions_on_page(page) == []
    set_text(page, SENTENCE)


def test_a_link_restores_every_attention_option_in_a_new_browser(app):
    server, page = app
    go_to(page, "Attention")
    # Options chosen by hand are written to the link …
    page.locator('[data-testid="stButtonGroup"]').filter(has_text="L1").first.get_by_role(
        "button", name="L2", exact=True
    ).click()
    wait_idle(page)
    page.get_by_text("Causal mask").click()
    wait_idle(page)
    view_button(page, "Query / key").click()
    wait_idle(page)
    assert "layer=1%2C2" in page.url or "layer=1,2" in page.url, page.url
    assert "causal=1" in page.url and "view=Query" in page.url, page.url
    # … and the rest can be written into it: a threshold and the query token.
    link = page.url + "&threshold=0.25&query=2"
    expected_heads = head_titles(page).all_text_contents()
    context = page.context.browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        fresh = context.new_page()
        fresh.set_default_timeout(90_000)
        fresh.goto(link)
        fresh.get_by_role("heading", name="Attention").wait_for()
        fresh.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
        wait_idle(fresh)
        assert head_titles(fresh).all_text_contents() == expected_heads
        assert fresh.get_by_label("Text").input_value() == SENTENCE
        assert fresh.locator("label", has_text="Causal mask").locator("input").is_checked()
        assert fresh.locator('[data-testid="stSliderThumbValue"]').first.inner_text() == "0.25"
        view = view_button(fresh, "Query / key")
        assert view.get_attribute("aria-checked") == "true"  # the open view is shown as chosen
        assert charts(fresh, "Query 2 ").count() == 1  # the chosen query token's chart
        assert exceptions_on_page(fresh) == []
    finally:
        context.close()
    # Back to the defaults for the tests that follow.
    page.goto(f"{server.url}/attention?text={SENTENCE}")
    page.get_by_role("heading", name="Attention").wait_for()
    wait_idle(page)


def test_the_dark_theme_renders_every_page_without_errors(app):
    _, light_page = app  # its browser: Playwright's sync API runs one browser per thread
    with AppServer(theme="dark") as server:
        context = light_page.context.browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(f"{server.url}/attention?head=1,2")
        page.get_by_role("heading", name="Attention").wait_for()
        page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
        wait_idle(page)
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"
        )
        red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 150, background  # the dark theme is on
        for title in ["Tokens", "Embeddings & positions", "Interpret", "Layer norm & residual stream", "Compare"]:
            go_to(page, title)
            page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
            assert exceptions_on_page(page) == [], title
        context.close()
