"""Screenshots of the main views, taken from the real app in headless Chromium (for the README).

  PYTHONPATH=. .venv/bin/python bench/screenshots.py [--out docs]

Starts `streamlit run app.py` on a free loopback port, opens each view as a new user would (via its link)
and saves a PNG per view, so the pictures can be remade after any change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.appserver import AppServer, browser_page, wait_idle  # noqa: E402

TEXT = "She opened the door and walked into the room where her father was waiting."
VIEWS = {
    "tokens": f"/?text={quote(TEXT)}",
    "fill_mask": f"/fill_mask?text={quote('She opened the [MASK] and walked into the room.')}",
    "attention": f"/attention?text={quote(TEXT)}",
    "interpret_roles": f"/interpret?text={quote(TEXT)}",
    "interpret_lens": f"/interpret?iview={quote('Logit lens')}&text={quote('She opened the [MASK] and walked in.')}",
    "interpret_probe": f"/interpret?iview={quote('Part of speech')}&text={quote(TEXT)}",
    "minilm_attention": f"/attention?model=minilm&text={quote(TEXT)}",
    "compare_minilm": f"/compare?model=minilm&text={quote('A man is playing a guitar.')}"
    f"&compare={quote('Someone is strumming a guitar.')}",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder for the PNGs")
    parser.add_argument("--only", nargs="*", help="names of the views to take (default: all)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with AppServer() as server, browser_page(viewport=(1440, 1000)) as page:
        page.set_default_timeout(120_000)
        for name, path in VIEWS.items():
            if args.only and name not in args.only:
                continue
            page.goto(server.url + path)
            page.locator('[data-testid="stAppViewContainer"] h1').first.wait_for()
            wait_idle(page, quiet_ms=1500, timeout_s=120)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(out / f"{name}.png")


if __name__ == "__main__":
    main()
