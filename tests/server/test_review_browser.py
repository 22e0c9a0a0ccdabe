"""The review page in headless Chromium against a real `hearth serve` on a loopback port.

Debian's chromium and chromium-driver (`make browser` installs them); selenium is pointed at
both binaries, so it downloads nothing. Without them this module skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from server.review.store import Item, ReviewStore
from tests.conftest import API_KEY, start_server, stop_server

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("Debian's chromium and chromium-driver are not installed (make browser)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ITEMS = [Item("5d0c1e7a9b32", 0, "Explain what LEFT JOIN keeps.", "Rows of the left table without a match, too."),
         Item("a94f00b1c2d8", 1, "What is a reorder level?", "The stock level <b>that</b> triggers an order.")]


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("review-browser")
    store = tmp / "review.sqlite3"
    ReviewStore(store).add_items(ITEMS)
    running = start_server(tmp, "--api-keys", API_KEY, "--n-slots", "1", "--n-ctx", "256", "--n-threads", "1",
                           env={"HEARTH_DATA_DIR": str(data_dir), "HEARTH_REVIEW__PATH": str(store)},
                           wait_ready=False)
    running.store = store
    yield running
    stop_server(running)


@pytest.fixture()
def browser(tmp_path):
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium-manager reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def wait(driver, condition, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, "article[data-item]")


def test_grade_in_the_browser_survives_a_reload(server, browser):
    browser.get(server.base_url + "/review")
    assert cards(browser) == []  # the page itself holds no answers
    browser.find_element(By.ID, "reviewer").send_keys("Ada Lovelace")
    browser.find_element(By.ID, "api-key").send_keys(API_KEY)
    browser.find_element(By.ID, "start").click()
    wait(browser, lambda d: len(cards(d)) == 2)
    second = cards(browser)[1]
    assert "The stock level <b>that</b> triggers an order." in second.text  # shown as text, not HTML
    assert second.find_elements(By.TAG_NAME, "b") == []

    second.find_element(By.CSS_SELECTOR, "input[type=radio][value='4']").click()
    second.find_element(By.TAG_NAME, "textarea").send_keys("Correct, could name lead time.")
    second.find_element(By.CSS_SELECTOR, "button.save").click()
    wait(browser, lambda d: cards(d)[1].find_element(By.CLASS_NAME, "saved").text.startswith("saved "))

    browser.refresh()  # name (localStorage) and key (sessionStorage) come back; the grade from the server
    wait(browser, lambda d: len(cards(d)) == 2)
    second = browser.find_element(By.ID, "item-a94f00b1c2d8")
    assert second.find_element(By.CSS_SELECTOR, "input[type=radio][value='4']").is_selected()
    assert second.find_element(By.TAG_NAME, "textarea").get_attribute("value") == "Correct, could name lead time."
    first = browser.find_element(By.ID, "item-5d0c1e7a9b32")  # not graded: nothing picked, no comment
    assert not any(r.is_selected() for r in first.find_elements(By.CSS_SELECTOR, "input[type=radio]"))
    assert first.find_element(By.TAG_NAME, "textarea").get_attribute("value") == ""
    assert "1 of 2 graded by Ada Lovelace" in browser.find_element(By.ID, "status").text

    [grade] = ReviewStore(server.store).grades()
    assert (grade.item_id, grade.reviewer, grade.score, grade.comment) == (
        "a94f00b1c2d8", "Ada Lovelace", 4, "Correct, could name lead time.")
    csp_errors = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert csp_errors == []


def test_without_the_key_the_page_shows_no_answers(server, browser):
    browser.get(server.base_url + "/review")
    browser.find_element(By.ID, "reviewer").send_keys("Mallory")
    browser.find_element(By.ID, "start").click()
    status = wait(browser, lambda d: d.find_element(By.ID, "status").text if "API key" in
                  d.find_element(By.ID, "status").text else None)
    assert "needs a valid API key" in status
    assert cards(browser) == [] and ITEMS[0].answer not in browser.page_source
