"""The web app in a real headless Chromium (Debian's chromium + chromedriver), served by the real
`calltrail-report serve` command: log in, pick the filters (branch then system, an agent by search,
a Jalali date in the picker), show the report, open a call's transfer chain, download PDF and
XLSX and read them back, and save screenshots of the Persian page.

Screenshots go to $CALLTRAIL_TEST_OUTPUT/web (default build/test-output/web). A missing browser is
a failure, never a skip.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from pypdf import PdfReader
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait
from test_web_seed import PASSWORD, seeded_database

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def output_dir() -> Path:
    """Where the screenshots are kept for people to look at."""
    base = Path(os.environ.get("CALLTRAIL_TEST_OUTPUT") or ROOT / "build" / "test-output")
    path = base / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def web_dsn(pg_admin_dsn: str, template_database: str) -> Iterator[str]:
    """A seeded database for the browser tests."""
    yield from seeded_database(pg_admin_dsn, template_database)


@pytest.fixture(scope="module")
def server(web_dsn: str) -> Iterator[str]:
    """`calltrail-report serve` on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "CALLTRAIL_DSN": web_dsn, "CALLTRAIL_WEB_SECRET": "browser-test-secret-0123456789",
           "CALLTRAIL_COMPANY": "تجارت الکترونیک اول"}
    with tempfile.TemporaryFile() as log:
        yield from _serve(env, port, log)


def _serve(env: dict[str, str], port: int, log: Any) -> Iterator[str]:
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "calltrail-report"), "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"calltrail-report serve did not start: {log.read().decode(errors='replace')}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def downloads() -> Iterator[Path]:
    """The browser's download directory."""
    path = Path(tempfile.mkdtemp(prefix="calltrail-downloads-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile; a missing browser or driver fails the test."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="calltrail-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1000", "--lang=fa"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
    })
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(f"cannot start headless Chromium: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], seconds: float = 15) -> Any:
    """Wait until `condition(driver)` is truthy and return it."""
    # The page may be replaced while we look (a form was posted): look again.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, seconds, ignored_exceptions=ignored).until(condition)


def wait_for_file(directory: Path, suffix: str, seconds: float = 60) -> Path:
    """The first finished download ending in `suffix`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = [p for p in directory.iterdir() if p.name.endswith(suffix)]
        if done:
            time.sleep(0.2)
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} file was downloaded into {directory}: {list(directory.iterdir())}")


def screenshot(driver: WebDriver, name: str, full_height: bool = True) -> Path:
    """A PNG of the page, saved to the test output directory and checked to be a real picture."""
    if full_height:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, max(1000, min(int(height) + 200, 4000)))
    path = output_dir() / name
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 30_000, f"{path} is suspiciously small ({len(data)} bytes)"
    width = int.from_bytes(data[16:20], "big")
    assert width >= 1000
    driver.set_window_size(1400, 1000)
    return path


def login(driver: WebDriver, base: str, username: str) -> None:
    """Log in through the form, as nobody before (an earlier test may have left a session)."""
    driver.delete_all_cookies()
    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "report-form"))


def system_names(driver: WebDriver) -> list[str]:
    """Values of the telephone-system list, without the "all" entry."""
    return [str(o.get_attribute("value")) for o in Select(driver.find_element(By.ID, "system")).options][1:]


def test_report_in_the_browser(server: str, browser: WebDriver, downloads: Path) -> None:
    driver = browser
    login(driver, server, "sales")
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("dir") == "rtl"
    assert driver.execute_script("return getComputedStyle(document.body).direction") == "rtl"

    # Branch, then system: the system list follows the branch (JSON endpoint + script).
    assert sorted(system_names(driver)) == ["shiraz-1", "tehran-main", "tehran-sales"]
    Select(driver.find_element(By.ID, "branch")).select_by_value("shiraz")
    wait_for(driver, lambda d: system_names(d) == ["shiraz-1"])
    Select(driver.find_element(By.ID, "branch")).select_by_value("tehran")
    wait_for(driver, lambda d: sorted(system_names(d)) == ["tehran-main", "tehran-sales"])
    Select(driver.find_element(By.ID, "system")).select_by_value("tehran-main")

    # The agent is found by a user search.
    agent = driver.find_element(By.ID, "agent")
    agent.send_keys("رضایی")
    driver.find_element(By.ID, "agent-search").click()
    result = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#agent-results li[data-username]"))
    assert "علی رضایی" in result[0].text

    def choose_first(d: WebDriver) -> bool:
        # Looked up afresh each time: the list is rebuilt when a search answer arrives.
        d.find_element(By.CSS_SELECTOR, "#agent-results li[data-username]").click()
        return True

    wait_for(driver, choose_first)
    assert agent.get_attribute("value") == "agent101"
    driver.find_element(By.ID, "agent-clear").click()
    assert agent.get_attribute("value") == ""

    # A custom range: the Jalali date picker, and the dates follow a calendar switch.
    Select(driver.find_element(By.ID, "period")).select_by_value("custom")
    assert not driver.find_element(By.ID, "year").is_displayed()
    start = driver.find_element(By.ID, "from")
    assert start.is_displayed()
    start.send_keys("1403/01/01")
    start.click()
    picker = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".datepicker:not([hidden])"))
    assert "فروردین ۱۴۰۳" in picker.text
    picker.find_element(By.XPATH, ".//button[@data-action='day' and text()='۱۰']").click()
    assert start.get_attribute("value") == "۱۴۰۳/۰۱/۱۰"
    Select(driver.find_element(By.ID, "calendar")).select_by_value("gregorian")
    assert start.get_attribute("value") == "۲۰۲۴-۰۳-۲۹"  # Persian digits on the Persian page
    assert Select(driver.find_element(By.ID, "month")).options[0].get_attribute("textContent") == "ژانویه"
    Select(driver.find_element(By.ID, "calendar")).select_by_value("jalali")
    assert start.get_attribute("value") == "۱۴۰۳/۰۱/۱۰"

    # Back to the seed's way: monthly, Farvardin 1403, by day, all types with internal calls.
    Select(driver.find_element(By.ID, "period")).select_by_value("month")
    assert driver.find_element(By.ID, "month").is_displayed()
    Select(driver.find_element(By.ID, "year")).select_by_value("1403")
    Select(driver.find_element(By.ID, "month")).select_by_value("1")
    Select(driver.find_element(By.ID, "type")).select_by_value("all,internal")
    screenshot(driver, "form-fa.png", full_height=False)
    driver.find_element(By.ID, "show").click()
    output = wait_for(driver, lambda d: d.find_element(By.ID, "report-output"))
    assert "گزارش روزانه جزئیات تماس‌ها" in output.text
    assert len(output.find_elements(By.CSS_SELECTOR, "tr[data-call]")) == 4
    assert output.find_elements(By.CSS_SELECTOR, ".chart svg")
    assert "جمع کل دوره" in output.text
    shot = screenshot(driver, "report-fa.png")
    print(f"Persian report page screenshot: {shot}")

    # A click on a call opens its transfer chain.
    # (On its first cell: the middle of the row may be the identity's link, which opens the CRM.)
    output.find_element(By.CSS_SELECTOR, "tr[data-call='1710900000.10'] td").click()
    dialog = wait_for(driver, lambda d: d.find_element(By.ID, "chain-dialog"))
    wait_for(driver, lambda d: "مریم کریمی" in dialog.text)
    assert "زنجیره انتقال تماس" in dialog.text
    screenshot(driver, "chain-fa.png", full_height=False)
    dialog.find_element(By.CSS_SELECTOR, "button.close").click()
    wait_for(driver, lambda d: not dialog.is_displayed())

    # "Get report" downloads the file in the chosen format.
    Select(driver.find_element(By.ID, "format")).select_by_value("pdf")
    driver.find_element(By.ID, "download").click()
    pdf = wait_for_file(downloads, ".pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert "گزارش روزانه جزئیات" in text
    assert "مریم کریمی" in text
    Select(driver.find_element(By.ID, "format")).select_by_value("xlsx")
    driver.find_element(By.ID, "download").click()
    xlsx = wait_for_file(downloads, ".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.read_bytes()))
    cells = [str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row if c.value]
    assert any("علی رضایی" in c for c in cells)
    assert any("هاشمی" in c for c in cells)

    # The sibling report, and English.
    driver.get(server + "/totals/agent")
    Select(driver.find_element(By.ID, "year")).select_by_value("1403")
    Select(driver.find_element(By.ID, "month")).select_by_value("1")
    driver.find_element(By.ID, "show").click()
    wait_for(driver, lambda d: "علی رضایی" in d.find_element(By.ID, "report-output").text)
    screenshot(driver, "totals-agent-fa.png", full_height=False)
    driver.find_element(By.CSS_SELECTOR, "form[action='/lang'] button").click()
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("dir") == "ltr")
    assert "Totals by agent" in driver.find_element(By.CSS_SELECTOR, ".nav").text
    screenshot(driver, "totals-agent-en.png", full_height=False)
    driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "login-form"))
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"


def test_no_console_errors_or_csp_violations(server: str, browser: webdriver.Chrome) -> None:
    login(browser, server, "admin")
    for path in ("/report", "/totals/number", "/admin/ops"):
        browser.get(server + path)
        wait_for(browser, lambda d: d.execute_script("return document.readyState") == "complete")
    # CSP violations and script errors are logged to the console at SEVERE.
    log: list[dict[str, Any]] = browser.execute("getLog", {"type": "browser"})["value"]
    entries = [e for e in log if e["level"] == "SEVERE"]
    assert entries == []
