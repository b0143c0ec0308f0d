"""The registry's pages in a real browser: the dashboard, a search, a case, and the incident
form filled in and submitted, with the triaged result on the page.

The app runs on uvicorn at 127.0.0.1 on a free port; headless Chromium from the system
(Debian's chromium and chromium-driver packages) drives it through Selenium. Nothing is
downloaded. Skipped, with the reason, where either is missing.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the registry extra is not installed (pip install 'redline[registry]')")
pytest.importorskip("sqlalchemy", reason="the registry extra is not installed (pip install 'redline[registry]')")
uvicorn = pytest.importorskip("uvicorn", reason="the registry extra is not installed (pip install 'redline[registry]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

from redline_testkit import CHROMEDRIVER, CHROMIUM, headless_chromium

from redline.registry.case import FailureCase
from redline.registry.store import Registry
from redline.registry.web import create_app

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="chromedriver is not installed (apt-get install chromium-driver)"),
]
TOKEN = "browser-write-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """(base URL, registry) of the app served on a free loopback port, stopped afterwards."""
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    registry.add_case(FailureCase(
        title="Membership of digits training rows leaks through confidences", mode="FM04", severity="Important",
        rationale="The attack tells members from non-members well above chance.",
        summary="A likelihood-ratio attack separated training rows.", check="FM04.lira", target="zoo:digits_overfit",
        data="builtin:digits", seed=0, budget=2000, params={"shadow_models": 8}, metrics={"auc": 0.81},
        system="digits-api"))
    registry.add_case(FailureCase(title="Backdoor trigger in a downloaded traffic-sign model", mode="FM10",
                                  severity="Critical", check="FM10.neural_cleanse", target="zoo:signs_backdoored",
                                  seed=1, system="sign-reader"))
    port = free_port()
    config = uvicorn.Config(create_app(registry, write_token=TOKEN), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the registry server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", registry
    srv.should_exit = True
    thread.join(timeout=10)
    registry.close()


@pytest.fixture
def browser():
    driver = headless_chromium()
    yield driver
    driver.quit()


@pytest.mark.timeout(120)
def test_browse_search_open_a_case_and_submit_an_incident(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, registry = server
    wait = WebDriverWait(browser, 20)

    # The dashboard: two cases, one Critical, one under FM04.
    browser.get(base + "/")
    assert browser.find_element(By.ID, "total-cases").text == "2"
    by_mode = browser.find_element(By.ID, "by-mode")
    assert by_mode.find_element(By.CSS_SELECTOR, 'a[href="/search?mode=FM04"]').text == "1"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.timeline rect.tbar")) == 2  # Important and Critical
    assert browser.execute_script("return document.scripts.length") == 0

    # Search by a word of the summary, with a mode filter, through the form.
    browser.find_element(By.LINK_TEXT, "Search").click()
    wait.until(ec.presence_of_element_located((By.NAME, "q"))).send_keys("likelihood")
    Select(browser.find_element(By.NAME, "mode")).select_by_value("FM04")
    browser.find_element(By.ID, "search-button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "result-count"), "1 case"))
    links = browser.find_elements(By.CSS_SELECTOR, "#results a.case-link")
    assert [a.text for a in links] == ["Membership of digits training rows leaks through confidences"]

    # The case page: its reproduction commands.
    links[0].click()
    command = wait.until(ec.visibility_of_element_located((By.ID, "scan-command")))
    assert command.text == ("redline scan zoo:digits_overfit --data builtin:digits --select FM04.lira --seed 0 "
                            "--budget 2000 --set FM04.lira.shadow_models=8")
    assert browser.find_element(By.ID, "replay-command").text.startswith("redline registry replay ")
    assert browser.find_element(By.ID, "case-severity").text == "Important"

    # The incident form, filled in like a person would, then submitted.
    browser.find_element(By.LINK_TEXT, "Submit an incident").click()
    title = '<script>alert(1)</script> Competitor sells a copy of our photo tagger'
    wait.until(ec.presence_of_element_located((By.NAME, "title"))).send_keys(title)
    browser.find_element(By.NAME, "what_happened").send_keys(
        "Four new API keys sent two million queries of random crops; a competitor's app now gives our tags.")
    browser.find_element(By.NAME, "attacker_capability").send_keys(
        "They trained a copy of the model from our API answers.")
    browser.find_element(By.NAME, "system").send_keys("photo-api")
    Select(browser.find_element(By.NAME, "facts.vector")).select_by_visible_text("queries")
    browser.find_element(By.CSS_SELECTOR, 'input[name="facts_list.effects"][value="model_copied"]').click()
    browser.find_element(By.NAME, "metrics").send_keys("fidelity: 0.97")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "submit-button").click()

    result = wait.until(ec.visibility_of_element_located((By.ID, "triage-result")))
    assert browser.find_element(By.ID, "triage-mode").text == "FM05 · Model stealing"
    severity = result.find_element(By.CSS_SELECTOR, ".badge").text
    assert severity in ("Critical", "Important")
    assert browser.find_element(By.ID, "triage-rationale").text.startswith(f"Rationale. Rated {severity}")
    assert browser.find_element(By.ID, "page-title").text == title  # shown as text, never run
    assert browser.execute_script("return document.scripts.length") == 0

    # The new case is stored and its page opens from the result.
    browser.find_element(By.ID, "case-link").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "page-title"), "Competitor sells a copy"))
    assert browser.find_element(By.ID, "case-severity").text == severity
    assert registry.search(mode="FM05").total == 1 and len(registry.incidents()) == 1
