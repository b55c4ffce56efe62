"""The playground end to end: a real ``cnnumpy serve`` and a real headless Chromium.

The module trains a LeNet-5 run with ``cnnumpy train`` (on real MNIST when it is
here: ``$CNNUMPY_DATA/mnist`` or ``../shared/data/mnist``; else on the offline
5,000-digit sample), serves its folder with ``cnnumpy serve`` on a free port of
127.0.0.1, and drives the page with Selenium as a user would: draw a 7 with the
mouse, train a network from the Train form, open Compare and Inside one step.

Chromium and its driver are Debian's ``chromium`` and ``chromium-driver`` (the
repo's set-up installs them, ``.ci/run``). Without them the module skips, unless
``CNNUMPY_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then it fails. When a test fails,
its report shows the server's log and the browser's console.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REQUIRE_BROWSER = os.environ.get("CNNUMPY_REQUIRE_BROWSER") == "1"

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as exc:  # pragma: no cover - depends on the machine
    if REQUIRE_BROWSER:
        raise ImportError(
            f"CNNUMPY_REQUIRE_BROWSER=1 but selenium cannot be imported ({exc}): "
            'pip install -e ".[test]"'
        ) from exc
    pytest.skip(
        f"selenium is not installed ({exc}): pip install -e '.[test]'",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow  # a server, a browser and two trainings: about 20 s

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"  # real MNIST beside the repo
CHROMEDRIVER = Path("/usr/bin/chromedriver")  # Debian's chromium-driver
RUN = "lenet5"
STOP_WAIT = 15.0  # seconds: the server stops a training within about 12
WAIT = 60.0  # seconds: a loaded 2-core machine is slow, a passing test is not
# The run the page reads a drawn 7 with: about 97% on MNIST's test set from 20,000
# real digits (about 7 s here), or about 94% from the sample's 4,000 digits.
REAL_MNIST_TRAINING = ["--dataset", "mnist", "--epochs", "3", "--limit", "20000"]
SAMPLE_TRAINING = ["--dataset", "mnist-sample", "--epochs", "5"]
# A 7 as one stroke: along the top from left to right, then down to the lower left.
# Points in fractions of the canvas, from its centre (x right, y down).
SEVEN = [(-0.28, -0.32), (0.26, -0.32), (-0.06, 0.38)]


# -- the data, the run, the server -----------------------------------------------------
def real_mnist_root() -> Path | None:
    """The data root holding ``mnist/``: ``$CNNUMPY_DATA``, else ``../shared/data``."""
    for root in (os.environ.get("CNNUMPY_DATA"), SHARED_DATA):
        if root and (Path(root) / "mnist").is_dir():
            return Path(root)
    return None


def train_lenet(out: Path) -> str:
    """``cnnumpy train`` LeNet-5 into ``out``; returns what it printed."""
    env = dict(os.environ)
    root = real_mnist_root()
    if root is not None:
        env["CNNUMPY_DATA"] = str(root)
    data = REAL_MNIST_TRAINING if root is not None else SAMPLE_TRAINING
    argv = [sys.executable, "-m", "cnnumpy", "train", "--model", "lenet5", *data]
    argv += ["--batch-size", "64", "--lr", "0.05", "--seed", "0"]
    argv += ["--out", str(out), "--quiet", "--no-report"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"cnnumpy train failed:\n{output}"
    return output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


class Playground:
    """``cnnumpy serve RUNS_DIR --port PORT`` in a process group of its own (its
    training worker included), its output in ``log_path``."""

    def __init__(self, runs_dir: Path, log_path: Path, env: dict) -> None:
        self.runs_dir, self.log_path = runs_dir, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        argv = [sys.executable, "-m", "cnnumpy", "serve", str(runs_dir)]
        argv += ["--port", str(self.port)]
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # one group: the server and its worker
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_serving(self, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"cnnumpy serve exited with {self.process.returncode}:\n"
                    f"{self.log()}"
                )
            try:
                get_json(self.url + "api/runs", timeout=2.0)
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"cnnumpy serve did not answer in {timeout:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM to the server, which stops its own training worker, as Ctrl+C
        would; then SIGKILL to whatever of the group is left."""
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_WAIT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_WAIT)

    def failure_sections(self) -> list[tuple[str, str]]:
        return [("cnnumpy serve log", self.log() or "(empty)")]


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """A LeNet-5 run under RUNS_DIR, served by ``cnnumpy serve``; always stopped."""
    root = tmp_path_factory.mktemp("e2e")
    runs_dir = root / "runs"
    train_lenet(runs_dir / RUN)
    env = dict(os.environ)
    if real_mnist_root() is not None:  # a job for "mnist" from the page reads it too
        env["CNNUMPY_DATA"] = str(real_mnist_root())
    server = Playground(runs_dir, root / "serve.log", env)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


# -- the browser -----------------------------------------------------------------------
class Browser:
    """A headless Chromium at the playground; keeps the console's entries."""

    def __init__(self) -> None:
        options = webdriver.ChromeOptions()
        for flag in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-dev-shm-usage",  # containers give /dev/shm a few MB
            "--disable-gpu",
            "--window-size=1280,900",
        ):
            options.add_argument(flag)
        chromium = shutil.which("chromium")
        if chromium:
            options.binary_location = chromium
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(
            options=options, service=Service(str(CHROMEDRIVER))
        )
        self.console: list[dict] = []

    def read_console(self) -> list[dict]:
        """The console's entries since the last call (the driver forgets them)."""
        entries = self.driver.get_log("browser")
        self.console += entries
        return entries

    def failure_sections(self) -> list[tuple[str, str]]:
        with contextlib.suppress(WebDriverException):
            self.read_console()
        lines = [f"{e['level']} {e['message']}" for e in self.console]
        return [("browser console", "\n".join(lines) or "(empty)")]


@pytest.fixture(scope="module")
def browser():
    if not CHROMEDRIVER.exists():
        reason = (
            f"{CHROMEDRIVER} is missing: install Debian's chromium and "
            "chromium-driver (apt-get install chromium chromium-driver; .ci/run "
            "does it)"
        )
        if REQUIRE_BROWSER:
            pytest.fail(f"CNNUMPY_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    opened = Browser()
    try:
        yield opened
    finally:
        opened.driver.quit()


@pytest.fixture
def page(browser, playground):
    """The driver on a freshly loaded playground, its console emptied."""
    browser.driver.get(playground.url)
    browser.read_console()
    browser.console.clear()
    wait_for(browser.driver, lambda d: RUN in options_of(d, "run-select"), "the runs")
    return browser.driver


def wait_for(driver, condition, what: str, timeout: float = WAIT):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        condition, f"waited {timeout:.0f} s for {what}"
    )


def options_of(driver, select_id: str) -> list[str]:
    select = driver.find_element(By.ID, select_id)
    return [
        o.get_attribute("value") for o in select.find_elements(By.TAG_NAME, "option")
    ]


def message(driver) -> str:
    """The page's message line: where every error of the API ends up."""
    return driver.find_element(By.ID, "message").text


def draw(driver, points, steps: int = 12) -> None:
    """Press, move through ``points`` (fractions of the canvas from its centre) in
    small steps as a hand would, release: mouse events on #draw-canvas."""
    canvas = driver.find_element(By.ID, "draw-canvas")
    width, height = canvas.size["width"], canvas.size["height"]

    def to(x: float, y: float, chain: ActionChains) -> ActionChains:
        return chain.move_to_element_with_offset(
            canvas, round(x * width), round(y * height)
        )

    chain = to(*points[0], ActionChains(driver, duration=10)).click_and_hold()
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        for k in range(1, steps + 1):
            t = k / steps
            to(x0 + t * (x1 - x0), y0 + t * (y1 - y0), chain).pause(0.02)
    chain.release().perform()


def draw_seven(driver) -> list[tuple[str, float]]:
    """Draw a 7 and wait for the answer to the finished drawing (the feature maps
    come with it); returns the top classes shown, best first."""
    draw(driver, SEVEN)
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#features .feature-row"),
        "the feature maps of the drawing",
    )
    shown = driver.find_elements(By.CSS_SELECTOR, "#top-classes li.top-class")
    return [
        (
            item.get_attribute("data-class"),
            float(item.get_attribute("data-probability")),
        )
        for item in shown
    ]


# Records every change of the training's state and of the loss curve's number of
# points as [state, points] in window.e2eSeen: polling could miss a short job.
WATCH_TRAINING = """
const state = document.getElementById("train-state");
const curve = document.getElementById("loss-curve");
window.e2eSeen = [];
const note = () =>
  window.e2eSeen.push([state.dataset.state, Number(curve.dataset.points)]);
const watch = new MutationObserver(note);
watch.observe(state, {attributes: true, attributeFilter: ["data-state"]});
watch.observe(curve, {attributes: true, attributeFilter: ["data-points"]});
"""


def severe(entries: list[dict]) -> list[str]:
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


# -- the tests -------------------------------------------------------------------------
def test_a_drawn_seven_reads_as_7(page, browser):
    Select(page.find_element(By.ID, "run-select")).select_by_value(RUN)
    top = draw_seven(page)
    assert top, "no top classes shown"
    assert top[0][0] == "7", f"the drawn 7 read as {top}"
    probabilities = [p for _, p in top]
    assert probabilities == sorted(probabilities, reverse=True)  # best first
    maps = page.find_elements(By.CSS_SELECTOR, "#draw-maps figure canvas")
    assert len(maps) >= 3  # occlusion, saliency, Grad-CAM (and what the model saw)
    assert page.find_elements(By.CSS_SELECTOR, "#filters canvas")
    assert message(page) == ""
    assert severe(browser.read_console()) == []


def test_a_short_training_from_the_page_grows_its_curve_and_finishes(
    page, browser, playground
):
    name = "e2e-train"
    page.find_element(By.ID, "tab-train").click()
    wait_for(page, lambda d: "lenet5" in options_of(d, "train-model"), "the zoo")
    Select(page.find_element(By.ID, "train-model")).select_by_value("lenet5")
    Select(page.find_element(By.ID, "train-dataset")).select_by_value("mnist-sample")
    for field, value in [
        ("train-epochs", "1"),
        ("train-batch-size", "16"),
        ("train-limit", "2000"),
        ("train-seed", "0"),
        ("train-name", name),  # last: picking a model or a data set clears the name
    ]:
        box = page.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    page.execute_script(WATCH_TRAINING)
    page.find_element(By.ID, "train-start").click()

    ended = wait_for(
        page,
        lambda d: (
            d.find_element(By.ID, "train-state").get_attribute("data-state")
            in ("finished", "stopped", "failed")
        ),
        "the end of the training",
        timeout=4 * WAIT,
    )
    seen = page.execute_script("return window.e2eSeen")  # [state, points] pairs
    state = page.find_element(By.ID, "train-state").get_attribute("data-state")
    assert ended and state == "finished", f"ended {state}: {message(page)}; {seen}"
    assert any(s == "running" and p > 0 for s, p in seen), f"no curve: {seen}"
    points = [p for _, p in seen]
    assert points == sorted(points), f"the loss curve lost points: {seen}"
    run = playground.runs_dir / name
    assert (run / "model.safetensors").is_file() and (run / "config.json").is_file()
    listed = [r["name"] for r in get_json(playground.url + "api/runs")["runs"]]
    assert name in listed
    assert severe(browser.read_console()) == []


def test_compare_and_inside_one_step_render_without_errors(page, browser):
    page.find_element(By.ID, "tab-compare").click()
    wait_for(
        page,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr"),
        "the table of Compare",
    )
    rows = page.find_elements(By.CSS_SELECTOR, "#compare-table tbody tr")
    assert any(row.text.startswith(RUN) for row in rows)
    loss = page.find_element(By.ID, "compare-loss")
    assert int(loss.get_attribute("data-points")) > 0
    assert message(page) == ""

    # the run picked before there is a picture, so that one step only is asked for
    # (a second one could replace the overview under the click)
    page.find_element(By.ID, "tab-step").click()
    Select(page.find_element(By.ID, "step-run-select")).select_by_value(RUN)
    page.find_element(By.ID, "tab-draw").click()
    Select(page.find_element(By.ID, "run-select")).select_by_value(RUN)
    draw_seven(page)
    page.find_element(By.ID, "tab-step").click()  # it follows the drawing
    channels = wait_for(
        page,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#step-overview canvas.clickable"),
        "the overview of Inside one step",
    )
    columns = page.find_elements(By.CSS_SELECTOR, "#step-overview .layer-column")
    assert len(columns) > 5  # the input and every layer of LeNet-5
    channels[0].click()  # the first convolution's first channel: its formula view
    wait_for(
        page,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#step-detail .formula"),
        "the formula view",
    )
    # the page's own sums (forward, db, dW, dx) agree with the server's numbers
    sums = page.find_elements(By.CSS_SELECTOR, "#step-detail p.sum")
    checks = [e.text for e in sums if e.text.startswith(("✓", "✗"))]
    assert len(checks) >= 4 and all(c.startswith("✓") for c in checks), checks
    page.find_element(By.ID, "step-gradients").click()  # the backward pass
    assert page.find_elements(By.CSS_SELECTOR, "#step-overview canvas")
    assert message(page) == ""
    assert severe(browser.read_console()) == []


def test_the_formula_view_adds_up_as_the_notes_do(page, browser):
    """The page's own sums of the formula view (forward, dW, dx), run in the browser
    on layers with strides and uneven padding, against the sums done by loops
    (``formula_check.js``); its ✓ does not tick a wrong small gradient."""
    check = (Path(__file__).parent / "formula_check.js").read_text()
    wrong = page.execute_async_script(check)
    assert wrong == [], wrong[:10]
    assert severe(browser.read_console()) == []


# Holds back the answers to /api/step for the loss of class 3 by 1.5 s, so that a
# later request's answer arrives first.
DELAY_CLASS_3 = """
const fetchNow = window.fetch;
window.fetch = (url, options) => {
  const answer = fetchNow(url, options);
  const held = String(url).startsWith("/api/step?") && String(url).includes("label=3");
  if (!held) return answer;
  return answer.then((r) => new Promise((ok) => setTimeout(() => ok(r), 1500)));
};
"""


def test_a_late_answer_does_not_replace_a_newer_step(page, browser):
    """Class 3 picked, then class 5 before the answer for 3 is back: the overview
    shows class 5, and still does once the answer for 3 has come."""
    Select(page.find_element(By.ID, "run-select")).select_by_value(RUN)
    draw_seven(page)
    page.find_element(By.ID, "tab-step").click()  # it follows the drawing
    Select(page.find_element(By.ID, "step-run-select")).select_by_value(RUN)
    wait_for(
        page,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#step-overview canvas.clickable"),
        "the overview of Inside one step",
    )
    page.execute_script(DELAY_CLASS_3)
    labels = Select(page.find_element(By.ID, "step-label"))
    labels.select_by_value("3")
    labels.select_by_value("5")

    def summary(driver) -> str:
        return driver.find_element(By.ID, "step-summary").text

    wait_for(page, lambda d: "the loss of class 5" in summary(d), "the step of class 5")
    time.sleep(3)  # the held answer for class 3 is back by now
    assert "the loss of class 5" in summary(page), summary(page)
    assert message(page) == ""
    assert severe(browser.read_console()) == []
