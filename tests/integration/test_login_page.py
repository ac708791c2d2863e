"""The sign-in page /login, driven in a real headless Chromium (through Debian's chromedriver and selenium) against a
real `rag serve` subprocess that has keys: the form's script posts the key, the browser keeps the HttpOnly cookie,
and /reports opens; a wrong key shows the service's message; `next` cannot send the browser off the service.

Chromium and chromedriver are system packages (`apt-get install -y chromium chromium-driver`, as `make test` does); a
missing one fails the test, it does not skip it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from rag.cli import app as cli
from tests.support.polling import HANG_GUARD_S
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.slow


def make_key(data_dir: Path, role: str) -> str:
    """`rag keys create` against the data directory, as an operator makes the first keys before starting."""
    args = ["keys", "create", "--role", role, "--collections", "*", "--name", f"browser-{role}"]
    result = CliRunner().invoke(cli, args, env={"RAG_DATA_DIR": str(data_dir)})
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("login") / "data"
    keys = {role: make_key(data_dir, role) for role in ("analyst", "reader")}
    svc = ServiceProcess(data_dir)
    svc.start()
    try:
        yield svc.url, keys
    finally:
        svc.stop()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("chromium or chromedriver is missing; as root: apt-get install -y chromium chromium-driver")
    # An explicit driver: selenium's own manager (which would look for a driver on the network) never runs.
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(arg)
    with webdriver.Chrome(options=options, service=DriverService(executable_path=driver)) as drv:
        drv.set_page_load_timeout(HANG_GUARD_S)
        yield drv


def wait(drv: WebDriver, what: str, condition: Callable[[WebDriver], bool]) -> None:
    WebDriverWait(drv, HANG_GUARD_S).until(condition, message=what)


def sign_in(drv: WebDriver, key: str) -> None:
    box = drv.find_element(By.ID, "key")
    box.clear()
    box.send_keys(key)
    drv.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()


def test_a_browser_signs_in_through_the_form_and_reads_reports(service, browser: WebDriver) -> None:
    url, keys = service
    browser.get(url + "/reports")
    assert browser.current_url == url + "/login?next=/reports"  # no cookie: sent to sign in

    sign_in(browser, "rag_nope.nope")
    wait(
        browser,
        "the form to show the refusal",
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "failed",
    )
    error = browser.find_element(By.ID, "error").text
    assert "key" in error.lower(), error  # the service's own 401 message, not a generic failure
    assert browser.get_cookies() == []

    sign_in(browser, keys["analyst"])
    wait(browser, "the browser to land on /reports", lambda d: d.current_url == url + "/reports")
    wait(
        browser,
        "the report to load",
        lambda d: d.find_element(By.ID, "report").get_attribute("data-state") in ("ready", "error"),
    )
    assert browser.find_element(By.ID, "report").get_attribute("data-state") == "ready"
    cookies = browser.get_cookies()
    assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")], cookies
    # HttpOnly: the page's scripts (and anything injected into them) cannot read the key.
    assert keys["analyst"] not in str(browser.execute_script("return document.cookie"))


def test_a_readers_key_signs_in_but_opens_no_report(service, browser: WebDriver) -> None:
    url, keys = service
    browser.get(url + "/login")
    sign_in(browser, keys["reader"])
    wait(browser, "the browser to land on /reports", lambda d: d.current_url == url + "/reports")
    # The page is refused with the API's JSON error (Chromium shows it as text), and no report is drawn.
    refusal = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    assert "reader" in refusal["error"], refusal
    assert browser.find_elements(By.ID, "report") == []


@pytest.mark.parametrize("target", ["//example.org/x", "https://example.org/", "/\\example.org"])
def test_next_never_leaves_the_service(service, browser: WebDriver, target: str) -> None:
    url, keys = service
    browser.get(f"{url}/login?next={target}")
    sign_in(browser, keys["analyst"])
    wait(browser, "the browser to land on /reports", lambda d: d.current_url == url + "/reports")
