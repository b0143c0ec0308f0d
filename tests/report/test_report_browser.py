"""The HTML report in a real browser: the action list is the first thing a reader sees.

Headless Chromium from the system (Debian's chromium and chromium-driver packages) driven by
Selenium; nothing is downloaded. Skipped, with the reason, where either is missing.
"""
from __future__ import annotations

import io

import pytest
from redline_testkit import CHROMEDRIVER, CHROMIUM, headless_chromium
from report_samples import make_report

from redline.report import write
from redline.triage.context import assume_for_target
from redline.triage.remediation import remediate

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="chromedriver is not installed (apt-get install chromium-driver)"),
]

WIDTH, HEIGHT = 1280, 900
CRITICAL_RGB = (0x7F, 0x1D, 0x1D)  # --crit in the report's CSS


@pytest.fixture
def browser():
    driver = headless_chromium(WIDTH, HEIGHT)
    yield driver
    driver.quit()


@pytest.mark.timeout(120)
def test_action_list_is_visible_first_and_says_what_to_do(tmp_path, artifacts_dir, browser):
    from PIL import Image
    from selenium.webdriver.common.by import By

    report = make_report(artifacts_dir)
    ctx = assume_for_target(None, remote=False)
    for f in report.findings:
        remediate(f, ctx, {"target": report.target["spec"], "seed": f.seed, "budgets": {}})
    page = write(report, "html", tmp_path / "report.html")
    browser.get(page.as_uri())

    section = browser.find_element(By.ID, "actions")
    items = section.find_elements(By.CSS_SELECTOR, "ol.actions > li")
    assert section.is_displayed() and len(items) == 2
    # Above the fold: the first action and its re-test command need no scrolling.
    first = items[0]
    assert first.location["y"] + first.size["height"] <= HEIGHT
    assert first.find_element(By.CSS_SELECTOR, ".badge").text == "Critical"
    assert "FM04.lira" in first.text and "AUC 0.81" in first.text
    command = first.find_element(By.CSS_SELECTOR, "code.retest")
    assert command.is_displayed() and command.text.startswith("redline scan zoo:digits_overfit --select FM04.lira")
    assert command.size["width"] <= section.size["width"]  # wraps inside the list, no overflow
    # The link jumps to the finding's details.
    assert first.find_element(By.TAG_NAME, "a").get_attribute("href").endswith("#finding-1")

    shot = tmp_path / "actions.png"
    assert browser.save_screenshot(str(shot))
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.size[0] >= WIDTH * 0.9
    # The first item's left border carries the Critical colour where the browser drew the item.
    x = int(first.location["x"]) + 2
    y = int(first.location["y"] + first.size["height"] / 2)
    pixel = image.getpixel((x, y))
    assert all(abs(a - b) <= 12 for a, b in zip(pixel, CRITICAL_RGB)), pixel
