"""Screenshots of the app's views, taken from the real app in headless Chromium at 1440 x 1000.

  PYTHONPATH=. .venv/bin/python bench/screenshots.py [--out docs] [--only tokens attention train step_through]
      [--theme dark] [--width 1440] [--height 1000] [--port N]

The README's Train picture is taken at ``--width 1400 --only train``: the size its one-screen layout is
made for.

Starts `streamlit run app.py` on a free loopback port (or `--port`), opens each view as a new user would (via its link),
saves a PNG per view and shrinks it (a 256-colour palette: a screenshot of flat colours and one colour
scale loses nothing a reader sees). The README's pictures are ``--only tokens attention train step_through``, so
they can be remade after any change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.appserver import AppServer, browser_page, wait_for_loss_curve, wait_idle  # noqa: E402

TEXT = "She opened the door and walked into the room where her father was waiting."
MASKED = "She opened the [MASK] and walked into the room."
VIEWS = {
    "tokens": f"/?text={quote(TEXT)}",
    "fill_mask": f"/fill_mask?text={quote(MASKED)}",
    "embeddings": f"/embeddings?text={quote(TEXT)}",
    "embeddings_pca": f"/embeddings?view={quote('Projection (PCA)')}&points={quote('This sentence only')}",
    "attention": f"/attention?layer=2&head=3&text={quote(TEXT)}",  # a head with a clear pattern
    "attention_four_heads": f"/attention?head=1,2,3,4&text={quote(TEXT)}",
    "attention_grid": f"/attention?view={quote('Overview grid')}",
    "attention_head_view": f"/attention?view={quote('Head view')}&head=1,2,3,4",
    "attention_entropy": f"/attention?view={quote('Mean & entropy')}",
    "attention_query_key": f"/attention?view={quote('Query / key')}&query=3&head=1,2",
    "attention_ablation": f"/attention?view={quote('Head ablation')}&off={quote('L1 H1')}",
    # One token's way through a head: from its query and every key to the scores, the softmax and the output.
    "step_through": f"/step_through?layer=2&head=3&query=3&text={quote(TEXT)}",
    "interpret_roles": f"/interpret?text={quote(TEXT)}",
    "interpret_lens": f"/interpret?iview={quote('Logit lens')}&text={quote('She opened the [MASK] and walked in.')}",
    "interpret_probe": f"/interpret?iview={quote('Part of speech')}&text={quote(TEXT)}",
    "layernorm": f"/layernorm?text={quote(TEXT)}",
    "model": "/model",
    "compare": "/compare",
    "minilm_attention": f"/attention?model=minilm&text={quote(TEXT)}",
    "compare_minilm": f"/compare?model=minilm&text={quote('A man is playing a guitar.')}"
    f"&compare={quote('Someone is strumming a guitar.')}",
    "train": "/train",  # started, then taken while it runs
}
ROLES_SECONDS = 8  # for the background head-role labelling to finish (once per model and server)
TRAIN_STEPS = 200  # of the Train page's default run, in the picture: its attention has formed by then
TRAIN_SECONDS = 2  # of training after that: the run still going in the picture


def shrink(path: Path) -> None:
    """Rewrites a screenshot with a 256-colour palette (a fraction of the bytes, the same picture to a reader)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def take(page, server: AppServer, name: str, path: str, out: Path) -> Path:
    page.goto(server.url + path)
    page.locator('[data-testid="stAppViewContainer"] h1').first.wait_for()
    wait_idle(page, quiet_ms=1500, timeout_s=120)
    if name == "attention":
        # Head-role badges are computed in the background after the first picture: reload to show them
        # (the later Attention views of the same server have them at once).
        page.wait_for_timeout(ROLES_SECONDS * 1000)
        page.reload()
        page.locator('[data-testid="stAppViewContainer"] h1').first.wait_for()
        wait_idle(page, quiet_ms=1500, timeout_s=120)
    if name == "step_through":
        # The attention arithmetic (scores, softmax, the weighted sum of values) at the top of the picture.
        page.locator('[data-testid="stPlotlyChart"]', has_text="Score of every key").first.evaluate(
            """e => {
                e.scrollIntoView({block: 'start', behavior: 'instant'});
                const scrolls = (b) => /(auto|scroll)/.test(getComputedStyle(b).overflowY) && b.scrollHeight > b.clientHeight;
                let box = e.parentElement;
                while (box && !scrolls(box)) box = box.parentElement;
                if (box) box.scrollBy({top: -90, behavior: 'instant'});  // below the app's top bar
            }"""
        )
        page.wait_for_timeout(500)
    if name == "train":
        page.get_by_role("button", name="Play", exact=True).click()
        # Until the heads have found the pattern (the reverse task's second layer, about step 200 of the
        # default 600; a loaded machine compiles the step slowly), then a little more: the run still going.
        wait_for_loss_curve(page, TRAIN_STEPS, timeout_ms=300_000)
        page.wait_for_timeout(TRAIN_SECONDS * 1000)  # the whole page fits the window: no scrolling
    file = out / f"{name}.png"
    page.screenshot(path=str(file))
    shrink(file)
    return file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder for the PNGs")
    parser.add_argument("--only", nargs="*", help="names of the views to take (default: all)")
    parser.add_argument("--theme", choices=["light", "dark"], default="light")
    parser.add_argument("--width", type=int, default=1440, help="window width in px")
    parser.add_argument("--height", type=int, default=1000, help="window height in px (taller: more of a page)")
    parser.add_argument("--port", type=int, help="port for the app (default: a free one)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (
        AppServer(port=args.port, theme=args.theme) as server,
        browser_page(viewport=(args.width, args.height)) as page,
    ):
        page.set_default_timeout(120_000)
        for name, path in VIEWS.items():
            if args.only and name not in args.only:
                continue
            print(take(page, server, name, path, out))


if __name__ == "__main__":
    main()
