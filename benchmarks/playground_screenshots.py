"""Screenshots of the playground's four views for the docs (docs/playground.md).

Trains three small runs (LeNet-5, LeNet-1 and the classic LeNet-5, a few epochs on
20,000 MNIST digits; on the offline sample when MNIST is not here), serves them with
``cnnumpy serve`` on a free port of 127.0.0.1, and drives a headless Chromium (Debian's
``chromium`` and ``chromium-driver``: ``make browser``) through the page:

- Draw: a 7 drawn with the mouse, its classes, maps, feature maps;
- Train: a LeNet-5 training started from the form, shot in the middle of its run;
- Compare: the four runs' curves and metrics;
- Inside one step: the overview of the drawn 7, then the formula view of a channel of
  the first convolution.

Each picture is 1440 x 960 pixels, saved as a 256-colour PNG (a few hundred KB at
most) as ``playground_{draw,train,compare,step}.png``.

    CNNUMPY_DATA=../shared/data python benchmarks/playground_screenshots.py \\
        --out docs/images
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent))  # headless.py
import headless  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
WIDTH, HEIGHT = 1440, 960  # wide enough for the maps beside the drawing
RUNS = ["lenet5", "lenet1", "lenet5_classic"]  # zoo models, run folders of their names
EPOCHS, LIMIT = 5, 20000
LIVE_RUN = "lenet5-live"  # the run the Train view starts
# The formula view's output cell: row 5, column 12 of LeNet-5's 24 x 24 first maps,
# where the kernel lies on the 7's top bar.
STEP_CELL, STEP_GRID = (5, 12), (24, 24)
# The 7 the Draw view shows: one stroke, in fractions of the canvas from its centre.
SEVEN = [(-0.28, -0.32), (0.26, -0.32), (-0.06, 0.38)]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    p.add_argument(
        "--runs", type=Path, help="RUNS_DIR to fill and keep (default: a temporary one)"
    )
    return p.parse_args(argv)


def data_env() -> dict:
    """The environment with ``$CNNUMPY_DATA`` pointing at MNIST when it is here."""
    env = dict(os.environ)
    if not env.get("CNNUMPY_DATA") and (SHARED_DATA / "mnist").is_dir():
        env["CNNUMPY_DATA"] = str(SHARED_DATA)
    return env


def train(runs_dir: Path, env: dict) -> None:
    """The runs of RUNS that are not there yet; the Train view's run of a previous
    time removed (its name is taken again)."""
    shutil.rmtree(runs_dir / LIVE_RUN, ignore_errors=True)
    for name in RUNS:
        if (runs_dir / name / "model.safetensors").is_file():
            continue
        argv = [sys.executable, "-m", "cnnumpy", "train", "--model", name]
        argv += ["--dataset", "mnist", "--sample-if-missing", "--epochs", str(EPOCHS)]
        argv += ["--limit", str(LIMIT), "--seed", "0", "--quiet", "--no-report"]
        print(f"training {name}", flush=True)
        subprocess.run([*argv, "--out", str(runs_dir / name)], env=env, check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


@contextlib.contextmanager
def serving(runs_dir: Path, env: dict):
    """``cnnumpy serve`` on a free port, in a process group of its own; yields its
    URL and stops the group (its training worker included) at the end."""
    port = free_port()
    argv = [sys.executable, "-m", "cnnumpy", "serve", str(runs_dir)]
    argv += ["--port", str(port)]
    server = subprocess.Popen(argv, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError(f"cnnumpy serve exited with {server.returncode}")
            with contextlib.suppress(OSError):
                get_json(url + "api/runs")
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"cnnumpy serve did not answer at {url} in 60 s")
        yield url
    finally:
        server.terminate()  # as Ctrl+C: the server stops its training worker
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # whatever of the group is left
        server.wait()


def chromium():
    return headless.chromium(WIDTH, HEIGHT)


def wait(driver, condition, timeout: float = 120.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def draw(driver, points, steps: int = 12) -> None:
    """One stroke through ``points`` with the mouse, in small moves."""
    canvas = driver.find_element(By.ID, "draw-canvas")
    width, height = canvas.size["width"], canvas.size["height"]
    chain = ActionChains(driver, duration=10)

    def to(x: float, y: float) -> None:
        chain.move_to_element_with_offset(canvas, round(x * width), round(y * height))

    to(*points[0])
    chain.click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        for k in range(1, steps + 1):
            to(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps)
            chain.pause(0.02)
    chain.release().perform()


def scroll_to(driver, element_id: str, margin: int = 10) -> None:
    driver.execute_script(
        "const box = document.getElementById(arguments[0]).getBoundingClientRect();"
        "window.scrollTo(0, window.scrollY + box.top - arguments[1]);",
        element_id,
        margin,
    )
    time.sleep(0.5)


def to_top(driver) -> None:
    """Back to the top of the page, no focus ring on the last control used."""
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    time.sleep(0.3)


def save(driver, path: Path) -> None:
    """The screenshot as a 256-colour PNG: the page's flat colours survive it, and
    the file is a quarter of the full-colour one."""
    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    with Image.open(raw) as shot:
        shot.convert("RGB").quantize(256).save(path, optimize=True)
    raw.unlink()
    print(f"{path} ({path.stat().st_size // 1024} KB)", flush=True)


def shoot_draw(driver, out: Path) -> None:
    Select(driver.find_element(By.ID, "run-select")).select_by_value("lenet5")
    draw(driver, SEVEN)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#filters canvas"))
    to_top(driver)
    save(driver, out / "playground_draw.png")


def shoot_train(driver, url: str, out: Path) -> None:
    """Start a LeNet-5 of 4 epochs from the form; shoot once two epochs are done."""
    driver.find_element(By.ID, "tab-train").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#train-model option"))
    Select(driver.find_element(By.ID, "train-model")).select_by_value("lenet5")
    Select(driver.find_element(By.ID, "train-dataset")).select_by_value("mnist")
    form = {"train-epochs": "4", "train-batch-size": "32", "train-limit": "30000"}
    form["train-name"] = LIVE_RUN
    for field, value in form.items():
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    driver.find_element(By.ID, "train-start").click()
    wait(driver, lambda d: len(get_json(url + "api/train/status")["epochs"]) >= 2)
    time.sleep(1.0)  # a few batches into the third epoch
    to_top(driver)
    save(driver, out / "playground_train.png")
    wait(driver, lambda d: not get_json(url + "api/train/status")["running"], 600)


def shoot_compare(driver, out: Path) -> None:
    close = driver.find_element(By.ID, "message-close")
    if close.is_displayed():  # "Training finished: ...": room for the table
        close.click()
    driver.find_element(By.ID, "tab-compare").click()
    wait(
        driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare-table tr")) > 4
    )
    to_top(driver)
    save(driver, out / "playground_compare.png")


def shoot_step(driver, out: Path) -> None:
    """The overview of the drawn 7, then a channel of the first convolution clicked:
    its formula view, the kernel on the input with the dot product's numbers."""
    driver.find_element(By.ID, "tab-step").click()  # it follows the drawing
    channels = wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#step-overview canvas.clickable"),
    )
    channels[1].click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#step-detail .formula"))
    time.sleep(1.0)  # the smooth scroll
    driver.execute_script("document.activeElement.blur();")
    scroll_to(driver, "step-detail")
    # the kernel on the top bar of the 7: output cell (i, j) = STEP_CELL of y[f]
    output = driver.find_element(By.CSS_SELECTOR, "#step-detail .map-frame.pickable")
    rows, cols = STEP_GRID
    dx = (STEP_CELL[1] + 0.5) / cols - 0.5
    dy = (STEP_CELL[0] + 0.5) / rows - 0.5
    width, height = output.size["width"], output.size["height"]
    offset = round(dx * width), round(dy * height)
    ActionChains(driver).move_to_element_with_offset(output, *offset).click().perform()
    time.sleep(0.3)
    save(driver, out / "playground_step.png")


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = data_env()
    with contextlib.ExitStack() as stack:
        runs_dir = args.runs or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        train(runs_dir, env)
        url = stack.enter_context(serving(runs_dir, env))
        driver = chromium()
        stack.callback(driver.quit)
        driver.get(url)
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#run-select option"))
        # the step's run picked before there is a picture: a change of run later
        # would ask for a second step, whose answer could replace the first's
        driver.find_element(By.ID, "tab-step").click()
        Select(driver.find_element(By.ID, "step-run-select")).select_by_value("lenet5")
        driver.find_element(By.ID, "tab-draw").click()
        shoot_draw(driver, args.out)
        shoot_train(driver, url, args.out)
        shoot_compare(driver, args.out)
        shoot_step(driver, args.out)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        for entry in errors:
            print("browser console:", entry["message"], file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
