"""Screenshots of the documentation site for the README and the docs' own pages.

Serves ``site/`` (built by ``make docs``) on a free port of 127.0.0.1 and opens three
pages in a headless Chromium (Debian's ``chromium`` and ``chromium-driver``:
``make browser``), each once MathJax has typeset its formulas:

- a chapter in English, scrolled to one of its sections (the output-size rule of
  chapter 3 by default: its formula and the numbers printed under it)
  (``site_chapter_en.png``),
- the same chapter in French, reached through the header's language switch
  (``site_chapter_fr.png``): the picture shows that the switch pairs the two pages;
- an API reference page, at one class (``site_api.png``).

Each picture is 1280 x 860 pixels, saved as a 256-colour PNG.

    make docs && python benchmarks/docs_screenshots.py --out docs/images
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent))  # headless.py
import headless  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 860
CHAPTER = "chapters/03_convolution/"
SECTION = 1  # the chapter's second "##" section: "The output size"
API = "reference/api-layers/#cnnumpy.layers.Conv2D"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", type=Path, default=ROOT / "site")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    p.add_argument("--chapter", default=CHAPTER, help="the chapter's path in the site")
    p.add_argument(
        "--section", type=int, default=SECTION, help="index of the chapter's ## section"
    )
    p.add_argument("--api", default=API, help="the API page's path and anchor")
    return p.parse_args(argv)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per file would drown the output
        pass


@contextlib.contextmanager
def serve(site: Path):
    """``http://127.0.0.1:PORT/`` serving ``site`` from a thread, for the block."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium():
    return headless.chromium(WIDTH, HEIGHT)


def wait_for_math(driver) -> None:
    """Until MathJax has typeset the page (it runs after the page's load event)."""
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    driver.set_script_timeout(30)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.Hub) { MathJax.Hub.Queue(() => done(true)); }"
        "else { done(false); }"
    )


def scroll_to_section(driver, index: int) -> None:
    """The index-th ``##`` heading at the top, under the fixed header: the same
    section in both languages, whatever its title."""
    driver.execute_script(
        "const h = document.querySelectorAll('article h2')[arguments[0]];"
        "if (h) { window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY"
        " - 72); }",
        index,
    )
    time.sleep(0.6)  # the header swaps the site's name for the page's, animated


def save(driver, path: Path) -> None:
    """The screenshot as a 256-colour PNG (the site's flat colours survive it)."""
    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    with Image.open(raw) as shot:
        shot.convert("RGB").quantize(256).save(path, optimize=True)
    raw.unlink()
    print(f"{path} ({path.stat().st_size // 1024} KB)", flush=True)


def shoot(driver, base: str, out: Path, args: argparse.Namespace) -> None:
    driver.get(base + args.chapter)
    wait_for_math(driver)
    scroll_to_section(driver, args.section)
    save(driver, out / "site_chapter_en.png")

    # the French page through the header's switch, as a reader would reach it
    switch = driver.find_element(By.CSS_SELECTOR, 'a[hreflang="fr"]')
    driver.get(switch.get_attribute("href"))
    wait_for_math(driver)
    if "/fr/" not in driver.current_url:
        raise SystemExit(f"the language switch led to {driver.current_url}")
    scroll_to_section(driver, args.section)
    save(driver, out / "site_chapter_fr.png")

    driver.get(base + args.api)
    wait_for_math(driver)
    save(driver, out / "site_api.png")


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (args.site / "index.html").exists():
        raise SystemExit(f"{args.site} has no site: run `make docs` first")
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(args.site) as base:
        driver = chromium()
        try:
            shoot(driver, base, args.out, args)
        finally:
            driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
