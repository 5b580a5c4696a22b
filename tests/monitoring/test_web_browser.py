"""The page in headless Chromium: basemap (bundled outlines or loopback XYZ tiles), flood raster tiles, legend,
history chart, swipe between two dates, URL state, desktop and phone widths.

Set FLOODWATCH_SCREENSHOTS=docs to write the screenshots shown in the docs (docs/web_*.png)."""
import contextlib
import io
import os
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from monitoring_helpers import recorded_store, serving
from tests.ports import free_port, start_on_free_ports
from web_helpers import web_store

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

DESKTOP, PHONE = (1366, 768), (390, 844)
FLOOD_RGB = np.array([230, 40, 30])


@contextlib.contextmanager
def serve_app(app):
    """uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(tmp_path):
    """The map_scene-recorded store of the older tests (AOIs 'west' and 'east'), offline basemap."""
    from floodwatch.monitoring.web import create_app

    db, outputs = recorded_store(tmp_path)
    with serve_app(create_app(db, outputs, basemap="offline")) as url:
        yield url


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return web_store(tmp_path_factory.mktemp("webmap"), n=3)


@pytest.fixture(scope="module")
def map_server(built):
    from floodwatch.monitoring.web import create_app

    db, outputs, _ = built
    with serve_app(create_app(db, outputs, basemap="offline")) as url:
        yield url


def make_browser(tmp_path, size):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={size[0]},{size[1]}",
                 f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path, prefix='chromium-')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_window_size(*size)
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = make_browser(tmp_path, DESKTOP)
    yield driver
    driver.quit()


@pytest.fixture
def phone(tmp_path):
    driver = make_browser(tmp_path, PHONE)
    yield driver
    driver.quit()


def open_page(browser, url):
    browser.get(url)
    wait = WebDriverWait(browser, 120)  # generous: the shared test machine can be very loaded
    body = browser.find_element(By.TAG_NAME, "body")
    wait.until(lambda d: body.get_attribute("data-ready") == "1" or body.get_attribute("data-error"))
    assert not body.get_attribute("data-error")
    return wait


def loaded_tiles(browser, selector):
    """Tile images under `selector` that finished loading with real pixels."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(i => i.complete && i.naturalWidth > 0).length;",
        selector + " img.leaflet-tile-loaded")


def shot(browser, tmp_path, name) -> np.ndarray:
    path = tmp_path / name
    browser.save_screenshot(str(path))
    if os.environ.get("FLOODWATCH_SCREENSHOTS"):
        target = Path(os.environ["FLOODWATCH_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def flood_coloured(img: np.ndarray) -> int:
    """Pixels whose colour is the flood red blended (opacity 0.8) over any background."""
    return int((np.abs(img - FLOOD_RGB).max(axis=2) < 60).sum())


def test_page_shows_floods_and_time_slider(server, browser, tmp_path):
    wait = open_page(browser, server + "/")
    # AOI outlines and the flood polygons are drawn as SVG paths
    assert len(browser.find_elements(By.CSS_SELECTOR, "path.aoi")) == 2
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "path.flood"))
    slider = browser.find_element(By.ID, "slider")
    assert slider.is_enabled() and slider.get_attribute("max") == "1" and slider.get_attribute("value") == "1"
    map_el = browser.find_element(By.ID, "map")
    assert map_el.get_attribute("data-flood-time") == "2024-05-13T05:00:00Z"
    latest_area = _flood_pixels(browser)

    slider.send_keys(Keys.ARROW_LEFT)  # back to the first acquisition
    wait.until(lambda d: map_el.get_attribute("data-flood-time") == "2024-05-01T05:00:00Z")
    assert browser.find_element(By.ID, "time-label").text == "2024-05-01T05:00:00Z"
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "path.flood"))
    assert _flood_pixels(browser) < latest_area  # less water on the first date
    # alert log lists the threshold alert of the second acquisition
    rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
    assert len(rows) == 1 and "threshold" in rows[0].text
    assert "date=2024-05-01T05%3A00%3A00Z" in browser.current_url


def _flood_pixels(browser) -> float:
    """Screen area of the flood layer's bounding boxes (a proxy for how much is drawn)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('path.flood')].reduce((s, p) => {"
        " const b = p.getBBox(); return s + b.width * b.height; }, 0);")


def test_layers_legend_chart_and_swipe(map_server, built, browser, tmp_path):
    _, _, expected = built
    wait = open_page(browser, map_server + "/")
    map_el = browser.find_element(By.ID, "map")
    # offline basemap: the bundled Natural Earth land polygons are drawn
    assert map_el.get_attribute("data-basemap") == "fallback"
    assert browser.find_elements(By.CSS_SELECTOR, "path.basemap-land")
    # the flood raster's tiles load, and their red shows on screen
    wait.until(lambda d: loaded_tiles(d, ".raster-flood") > 0)
    wait.until(lambda d: d.execute_script(
        "return document.querySelectorAll('.raster-flood img:not(.leaflet-tile-loaded)').length") == 0)
    assert flood_coloured(shot(browser, tmp_path, "web_desktop.png")) > 2000
    legend = browser.find_element(By.ID, "legend")
    assert legend.is_displayed() and "flood" in legend.text and "permanent water" in legend.text
    assert browser.find_element(By.CSS_SELECTOR, ".leaflet-control-scale-line").text.strip()
    assert "Flood mask" in browser.find_element(By.CSS_SELECTOR, ".leaflet-control-layers").get_attribute("textContent")
    # the chart: one point per date for each series, labelled axes, the threshold line
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle.dot.flooded")) == len(expected) >= 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle.dot.permanent")) == len(expected)
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#chart .axis-label")]
    assert labels == ["acquisition date (UTC)", "area (km²)"]
    assert browser.find_elements(By.CSS_SELECTOR, "#chart line.threshold")
    # clicking the first point shows that acquisition and puts it in the URL
    browser.find_elements(By.CSS_SELECTOR, "#chart circle.dot.flooded")[0].click()
    wait.until(lambda d: map_el.get_attribute("data-flood-time") == expected[0]["acquired"])
    assert "date=" + quote(expected[0]["acquired"], safe="") in browser.current_url
    # raster opacity
    browser.execute_script("const o = document.getElementById('opacity'); o.value = 30;"
                           "o.dispatchEvent(new Event('input'));")
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('.raster-flood')).opacity") == "0.3"
    browser.execute_script("const o = document.getElementById('opacity'); o.value = 80;"
                           "o.dispatchEvent(new Event('input'));")

    # swipe: the last date on the right, the first on the left
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))",
                           browser.find_elements(By.CSS_SELECTOR, "#chart circle.dot.flooded")[-1])
    wait.until(lambda d: map_el.get_attribute("data-flood-time") == expected[-1]["acquired"])
    browser.find_element(By.ID, "compare-toggle").click()
    assert browser.find_element(By.ID, "swipe-bar").is_displayed()
    wait.until(lambda d: map_el.get_attribute("data-compare-time") == expected[-2]["acquired"])
    browser.execute_script("const s = document.getElementById('compare-select'); s.value = '0';"
                           "s.dispatchEvent(new Event('change'));")
    wait.until(lambda d: map_el.get_attribute("data-compare-time") == expected[0]["acquired"])
    wait.until(lambda d: loaded_tiles(d, ".leaflet-compare-pane .raster-flood") > 0)
    assert "compare=" + quote(expected[0]["acquired"], safe="") in browser.current_url
    clip = lambda pane: browser.execute_script(f"return map.getPane('{pane}').style.clip")  # noqa: E731
    assert clip("compare").startswith("rect(") and clip("rasters").startswith("rect(")
    # put the divider through the flood disc's centre: its left half is the first date's small disc, the
    # right half the last date's large one
    cx = browser.execute_script(
        "const b = document.querySelector('path.aoi').getBoundingClientRect(),"
        " m = document.getElementById('map').getBoundingClientRect();"
        " return (b.left + 0.6 * b.width - m.left) / m.width * 100;")
    before = clip("compare")
    browser.execute_script("const s = document.getElementById('swipe'); s.value = arguments[0];"
                           "s.dispatchEvent(new Event('input'));", round(cx))
    assert clip("compare") != before
    time.sleep(0.3)  # let the browser paint the clip before the screenshot
    img = shot(browser, tmp_path, "web_swipe.png")
    line = int(browser.execute_script("return document.getElementById('swipe-line').getBoundingClientRect().left"))
    box = browser.execute_script("const b = document.querySelector('path.aoi').getBoundingClientRect();"
                                 "return [b.left, b.top, b.right, b.bottom].map(Math.round);")
    left, right = img[box[1]:box[3], box[0]:line - 3], img[box[1]:box[3], line + 3:box[2]]
    assert flood_coloured(right) > 3 * flood_coloured(left) > 0
    # the handle on the divider drags it too
    from selenium.webdriver import ActionChains

    ActionChains(browser).drag_and_drop_by_offset(browser.find_element(By.ID, "swipe-handle"), -200, 0).perform()
    assert float(browser.find_element(By.ID, "swipe").get_attribute("value")) < cx - 5


def test_url_restores_aoi_date_and_comparison(map_server, built, browser):
    _, _, expected = built
    first, second = expected[0]["acquired"], expected[1]["acquired"]
    open_page(browser, f"{map_server}/?aoi=delta&date={quote(second)}&compare={quote(first)}")
    map_el = browser.find_element(By.ID, "map")
    assert map_el.get_attribute("data-flood-time") == second
    assert browser.find_element(By.ID, "slider").get_attribute("value") == "1"
    assert browser.find_element(By.ID, "compare-toggle").is_selected()
    WebDriverWait(browser, 20).until(lambda d: map_el.get_attribute("data-compare-time") == first)


def test_phone_width(map_server, phone, tmp_path):
    wait = open_page(phone, map_server + "/")
    wait.until(lambda d: loaded_tiles(d, ".raster-flood") > 0)
    width = phone.execute_script("return document.documentElement.clientWidth")
    assert phone.execute_script("return document.documentElement.scrollWidth") <= width  # no sideways scroll
    m = phone.find_element(By.ID, "map").rect
    panel = phone.find_element(By.ID, "panel").rect
    chart = phone.find_element(By.ID, "chart").rect
    assert m["width"] >= width - 1 and m["height"] > 300 and panel["y"] >= m["y"] + m["height"] - 1
    assert chart["width"] <= width and chart["width"] > 250
    # the layer switcher is collapsed to its button on a phone
    assert "leaflet-control-layers-expanded" not in phone.find_element(
        By.CSS_SELECTOR, ".leaflet-control-layers").get_attribute("class")
    time.sleep(0.3)
    assert flood_coloured(shot(phone, tmp_path, "web_phone.png")) > 500


class TileHandler(BaseHTTPRequestHandler):
    """An XYZ basemap on loopback: every /z/x/y.png is a pale green tile."""
    hits = 0
    png = b""

    def do_GET(self):
        TileHandler.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.png)))
        self.end_headers()
        self.wfile.write(self.png)

    def log_message(self, *args):
        pass


def test_online_basemap_tiles(built, browser, tmp_path):
    from floodwatch.monitoring.web import create_app

    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 230, 200)).save(buf, "PNG")
    TileHandler.png, TileHandler.hits = buf.getvalue(), 0
    db, outputs, _ = built
    with serving(TileHandler) as tiles, serve_app(create_app(db, outputs, basemap=tiles + "/{z}/{x}/{y}.png")) as url:
        wait = open_page(browser, url + "/")
        wait.until(lambda d: loaded_tiles(d, ".basemap-tiles") > 0)
        assert browser.find_element(By.ID, "map").get_attribute("data-basemap") == "tiles"
        assert TileHandler.hits > 0


def test_hundred_acquisitions(tmp_path, browser):
    """100 records: the chart draws them all (first paint is timed in benchmarks/web_load.py, not here)."""
    from floodwatch.monitoring.web import create_app

    db, outputs, expected = web_store(tmp_path / "store", n=100, size=128)
    with serve_app(create_app(db, outputs, basemap="offline")) as url:
        open_page(browser, url + "/")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle.dot.flooded")) == 100
        assert browser.find_element(By.ID, "map").get_attribute("data-flood-time") == expected[-1]["acquired"]
