"""A real browser (Debian's chromium through Selenium and chromedriver) on a real server: log in,
create a case, upload the real C-NMC sample cells, review flagged cells with the keyboard, sign
out, check the exported CSV. Set BLASTSCOPE_SCREENSHOTS=DIR to keep screenshots of the pages."""
from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.serve.conftest import PASSWORDS, make_users, sample_files
from tests.serve.test_server_process import _port, start_server

webdriver = pytest.importorskip("selenium.webdriver")


def _driver():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000", "--disable-gpu"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def _wait(predicate, timeout: float = 60.0, what: str = ""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # the page is reloading
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_review_and_sign_out_in_a_real_browser(tiny_bundle, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    db, log, port = tmp_path / "lab.sqlite", tmp_path / "server.log", _port()
    make_users(db)
    shots = os.environ.get("BLASTSCOPE_SCREENSHOTS")
    proc = start_server(tiny_bundle, db, port, log)
    driver = _driver()
    try:
        base = f"http://127.0.0.1:{port}"
        driver.get(base + "/")
        driver.find_element(By.ID, "name").send_keys("alice")
        driver.find_element(By.ID, "password").send_keys(PASSWORDS["alice"])
        driver.find_element(By.ID, "login").click()
        _wait(lambda: driver.find_elements(By.ID, "sample_id"), what="the cases page")
        driver.find_element(By.ID, "sample_id").send_keys("P-42")
        driver.find_element(By.ID, "create").click()
        _wait(lambda: driver.find_elements(By.ID, "files"), what="the case page")
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in sample_files()))
        driver.find_element(By.ID, "upload-button").click()
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".cell[data-status=ok]")) == 10
              and driver.find_element(By.ID, "progress").get_attribute("data-done") == "true", what="10 predicted cells")
        flagged = [c.get_attribute("data-cell") for c in driver.find_elements(By.CSS_SELECTOR, ".cell.flagged")]
        assert flagged, "the tiny model flags cells below the confidence threshold"
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(Path(shots) / "workstation-case.png"))
        # arrows move between cells
        active = driver.switch_to.active_element
        first_id = active.get_attribute("data-cell")
        assert first_id == flagged[0]  # the page focuses the first flagged cell
        active.send_keys(Keys.ARROW_RIGHT)
        moved = driver.switch_to.active_element.get_attribute("data-cell")
        cells = [c.get_attribute("data-cell") for c in driver.find_elements(By.CSS_SELECTOR, ".cell")]
        assert cells.index(moved) == min(cells.index(first_id) + 1, len(cells) - 1)
        # review every flagged cell with the keyboard: "1" = first class (hem)
        reviewed = 0
        while True:
            todo = driver.find_elements(By.CSS_SELECTOR, ".cell.flagged:not(.reviewed)")
            if not todo:
                break
            target = todo[0].get_attribute("data-cell")
            driver.execute_script("arguments[0].focus()", todo[0])
            driver.switch_to.active_element.send_keys("1")
            _wait(lambda: "reviewed" in driver.find_element(By.CSS_SELECTOR, f'.cell[data-cell="{target}"]').get_attribute("class"),
                  what=f"cell {target} reviewed")
            reviewed += 1
        assert reviewed == len(flagged)
        if shots:
            driver.get(driver.current_url.split("?")[0] + "?show=flagged")
            driver.save_screenshot(str(Path(shots) / "workstation-review.png"))
        driver.find_element(By.ID, "signout").click()
        _wait(lambda: driver.find_element(By.ID, "case-status").text == "signed", what="the signed-out case")
        assert not driver.find_elements(By.CSS_SELECTOR, "form.review")  # locked: no review buttons
        text = driver.execute_async_script(
            "var done = arguments[0]; fetch(document.getElementById('export-csv').href).then(r => r.text()).then(done);")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 10
        by_cell = {r["cell"]: r for r in rows}
        for c in flagged:
            r = by_cell[c]
            assert r["reviewed_by"] == "alice" and r["final_label"] == "hem"
        assert all(r["final_label"] == r["model_label"] for r in rows if not r["reviewed_by"])
    finally:
        driver.quit()
        proc.kill()
        proc.wait(timeout=30)
