"""The page in headless Chromium: AOIs and the flood layer appear, the time slider moves the map in time."""
import shutil
import tempfile
import threading
import time

import pytest

from monitoring_helpers import recorded_store
from tests.ports import free_port, start_on_free_ports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="headless Chromium + chromedriver not installed "
                       "(Debian: apt-get install chromium chromium-driver)"),
]
selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install floodwatch[monitor])")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def server(tmp_path):
    import uvicorn

    from floodwatch.monitoring.web import create_app

    db, outputs = recorded_store(tmp_path)
    app = create_app(db, outputs)

    def start():
        port = free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.time() + 20
        while not srv.started and thread.is_alive() and time.time() < deadline:
            time.sleep(0.05)
        if not srv.started:  # a failed bind ends the thread (uvicorn exits its run)
            srv.should_exit = True
            thread.join(10)
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        return srv, thread, port

    srv, thread, port = start_on_free_ports(start, (RuntimeError,))
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,800",
                 f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path, prefix='chromium-')}"):
        opts.add_argument(flag)
    service = webdriver.ChromeService(executable_path=DRIVER)
    driver = webdriver.Chrome(options=opts, service=service)
    yield driver
    driver.quit()


def test_page_shows_floods_and_time_slider(server, browser, tmp_path):
    browser.get(server + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
               or d.find_element(By.TAG_NAME, "body").get_attribute("data-error"))
    assert not browser.find_element(By.TAG_NAME, "body").get_attribute("data-error")
    # AOI outlines and the latest flood layer are drawn as SVG paths
    assert len(browser.find_elements(By.CSS_SELECTOR, "path.aoi")) == 2
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "path.flood"))
    slider = browser.find_element(By.ID, "slider")
    assert slider.is_enabled() and slider.get_attribute("max") == "1" and slider.get_attribute("value") == "1"
    map_el = browser.find_element(By.ID, "map")
    assert map_el.get_attribute("data-flood-time") == "2024-05-13T05:00:00Z"
    latest_area = _flood_pixels(browser)
    browser.save_screenshot(str(tmp_path / "web_latest.png"))

    slider.send_keys(Keys.ARROW_LEFT)  # back to the first acquisition
    wait.until(lambda d: map_el.get_attribute("data-flood-time") == "2024-05-01T05:00:00Z")
    assert browser.find_element(By.ID, "time-label").text == "2024-05-01T05:00:00Z"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "path.flood"))
    assert _flood_pixels(browser) < latest_area  # less water on the first date
    # alert log lists the threshold alert of the second acquisition
    rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
    assert len(rows) == 1 and "threshold" in rows[0].text
    shot = tmp_path / "web_first.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def _flood_pixels(browser) -> float:
    """Screen area of the flood layer's bounding boxes (a proxy for how much is drawn)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('path.flood')].reduce((s, p) => {"
        " const b = p.getBBox(); return s + b.width * b.height; }, 0);")
