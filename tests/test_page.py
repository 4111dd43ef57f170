"""The demo page at / in headless Chromium (Debian's chromium and chromium-driver), driven over WebDriver."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from server_fixture import ASTRONAUT_FACE, ServiceProcess, astronaut, encode

from model_store.vocabulary import SIZES

pytest_plugins = ["server_fixture"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# The <img> as the browser shows it, read back through a canvas as a PNG data URL.
READ_IMAGE = """
const img = arguments[0];
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth;
canvas.height = img.naturalHeight;
canvas.getContext("2d").drawImage(img, 0, 0);
return canvas.toDataURL("image/png");
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}: apt-get install -y chromium chromium-driver")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def status(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.ID, "status").text


def shown_image(driver: webdriver.Chrome) -> np.ndarray:
    url = driver.execute_script(READ_IMAGE, driver.find_element(By.ID, "annotated"))
    png = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def test_upload_shows_the_annotated_image_and_probabilities(
    browser: webdriver.Chrome, server: ServiceProcess, tmp_path: Path
) -> None:
    photo = tmp_path / "astronaut.png"
    photo.write_bytes(encode(astronaut(), ".png"))
    wait = WebDriverWait(browser, 60)
    browser.get(f"{server.url}/")
    wait.until(lambda driver: status(driver).startswith("Ready"))
    size = Select(browser.find_element(By.ID, "size"))
    assert [option.get_attribute("value") for option in size.options] == [f"microexpnet_{s.lower()}" for s in SIZES]
    assert size.first_selected_option.get_attribute("value") == "microexpnet_m"
    size.select_by_value("microexpnet_xs")

    browser.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(lambda driver: status(driver).startswith("Done"))
    (card,) = browser.find_elements(By.CSS_SELECTOR, "#results .face")
    rows = card.find_elements(By.CSS_SELECTOR, ".prob")
    labels = [row.find_elements(By.TAG_NAME, "span")[0].text for row in rows]
    assert len(labels) >= 7 and "happiness" in labels
    assert card.find_element(By.TAG_NAME, "h2").text.split()[2] in labels  # "Face 1: <label> NN%"
    assert "model microexpnet_xs v" in browser.find_element(By.ID, "results").text

    # The picture shown is the server's annotated image: the original with a box drawn around the face.
    shown, original = shown_image(browser), astronaut()
    assert shown.shape == original.shape
    changed = np.abs(shown.astype(int) - original.astype(int)).max(axis=2) > 60
    x, y, w, h = ASTRONAUT_FACE
    assert changed[y - 40 : y + h + 20, x - 20 : x + w + 20].sum() > 200
    assert changed[300:, :].mean() < 0.01

    size.select_by_value("microexpnet_xxs")  # choosing another model analyses the same picture again
    wait.until(lambda driver: "model microexpnet_xxs v" in driver.find_element(By.ID, "results").text)


def test_a_file_that_is_no_image_shows_the_error(
    browser: webdriver.Chrome, server: ServiceProcess, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.jpg"
    junk.write_text("these are notes, not a photo")
    browser.get(f"{server.url}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda driver: status(driver).startswith("Ready"))
    browser.find_element(By.ID, "file").send_keys(str(junk))
    wait.until(lambda driver: status(driver).startswith("Error"))
    assert "invalid_image" in status(browser)
