"""Headless Chromium for the screenshot scripts (Debian's ``chromium`` and its
``/usr/bin/chromedriver``; ``make browser`` installs them)."""

from __future__ import annotations

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium(width: int, height: int) -> webdriver.Chrome:
    """A headless Chromium whose page is ``width`` x ``height`` CSS pixels, whatever
    the window's frame takes, at one device pixel per CSS pixel."""
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    metrics = {
        "width": width,
        "height": height,
        "deviceScaleFactor": 1,
        "mobile": False,
    }
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    except BaseException:
        driver.quit()  # else the browser outlives the script that failed
        raise
    return driver
