"""The demo page at / in headless Chromium (Debian's chromium and chromium-driver), driven over WebDriver."""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait
from server_fixture import API_KEY, ASTRONAUT_FACE, ServiceProcess, astronaut, encode

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
# A fake camera (its permission prompt is answered no unless --use-fake-ui-for-media-stream answers it yes).
FAKE_CAMERA = ("--use-fake-device-for-media-stream",)
CLIP_SIZE = (640, 480)
CLIP_FRAMES = 30
CLIP_PAN = 16  # pixels the astronaut sways left and right over the clip
SCREENSHOT_SIZE = (900, 1000)  # the browser window for the webcam screenshot: the controls and the whole video
# The <img> as the browser shows it, read back through a canvas as a PNG data URL.
READ_IMAGE = """
const img = arguments[0];
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth;
canvas.height = img.naturalHeight;
canvas.getContext("2d").drawImage(img, 0, 0);
return canvas.toDataURL("image/png");
"""
READ_CANVAS = "return arguments[0].toDataURL('image/png');"
READ_COLOR = "return getComputedStyle(arguments[0]).color;"
LOG_RESOLUTION_S = 0.002  # the log's timestamps are whole milliseconds


def clip_frame(index: int) -> np.ndarray:
    """Frame `index` of the fake camera's clip: the astronaut's top 480 rows, centred and swaying sideways."""
    width, height = CLIP_SIZE
    frame = np.full((height, width, 3), 90, np.uint8)
    photo = astronaut()[:height]
    left = (width - photo.shape[1]) // 2 + round(CLIP_PAN * math.sin(2 * math.pi * index / CLIP_FRAMES))
    frame[:, left : left + photo.shape[1]] = photo
    return frame


def write_y4m(path: Path) -> Path:
    """The clip as YUV4MPEG2, the raw format Chromium's fake camera plays (in a loop): a header, then per frame
    "FRAME" and the I420 planes."""
    width, height = CLIP_SIZE
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(CLIP_FRAMES):
            out.write(b"FRAME\n" + cv2.cvtColor(clip_frame(index), cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@contextmanager
def chromium(profile: Path, *flags: str) -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}: apt-get install -y chromium chromium-driver")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, *flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CSP violations go
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Chromium with a fake camera playing the clip, allowed without a prompt."""
    clip = write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m")
    camera = (*FAKE_CAMERA, "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={clip}")
    with chromium(tmp_path_factory.mktemp("chromium-profile"), *camera) as driver:
        yield driver


def status(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.ID, "status").text


def decode_data_url(url: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    png = base64.b64decode(url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), flags)


def shown_image(driver: webdriver.Chrome) -> np.ndarray:
    return decode_data_url(driver.execute_script(READ_IMAGE, driver.find_element(By.ID, "annotated")))


def frames_per_second(driver: webdriver.Chrome) -> float:
    """The live rate the page shows ("12.3 frames/s"), 0 before it has one ("– frames/s")."""
    shown = re.fullmatch(r"(\d+\.\d) frames/s", driver.find_element(By.ID, "fps").text)
    return float(shown.group(1)) if shown else 0.0


def predict_requests(log: str) -> list[tuple[str, float, float]]:
    """The service log's POST /v1/predict requests: (the image it logged, start and end in epoch seconds)."""
    requests = []
    for line in log.splitlines():
        entry = json.loads(line)
        if entry.get("path") == "/v1/predict":
            ended = datetime.fromisoformat(entry["ts"]).timestamp()
            requests.append((entry.get("image", ""), ended - entry["duration_ms"] / 1000, ended))
    return sorted(requests, key=lambda request: request[2])


def start_webcam(driver: webdriver.Chrome, url: str) -> WebDriverWait:
    wait = WebDriverWait(driver, 60)
    driver.get(f"{url}/")
    wait.until(lambda page: status(page).startswith("Ready"))
    driver.find_element(By.ID, "start").click()
    return wait


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


def test_a_server_with_api_keys_gets_the_key_from_the_page(
    browser: webdriver.Chrome, locked_server: ServiceProcess, tmp_path: Path
) -> None:
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode(astronaut()))
    browser.get(f"{locked_server.url}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda driver: "needs an API key" in status(driver))
    key = browser.find_element(By.ID, "api-key")
    assert key.is_displayed()
    key.send_keys("not the key" + Keys.TAB)
    wait.until(lambda driver: "not valid" in status(driver))
    key.clear()
    key.send_keys(API_KEY + Keys.TAB)
    wait.until(lambda driver: status(driver).startswith("Ready"))
    browser.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(lambda driver: status(driver).startswith("Done"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results .face")) == 1


def test_webcam_mode_draws_the_faces_and_the_rate_live(
    browser: webdriver.Chrome, server: ServiceProcess, client: httpx.Client, tmp_path: Path
) -> None:
    logged = len(server.log())
    wait = start_webcam(browser, server.url)
    Select(browser.find_element(By.ID, "size")).select_by_value("microexpnet_xxs")  # applies from the next frame
    wait.until(lambda driver: "model microexpnet_xxs v" in driver.find_element(By.ID, "live-faces").text)
    wait.until(lambda driver: frames_per_second(driver) > 0)
    assert status(browser) == "Live" and not browser.find_element(By.ID, "output").is_displayed()
    # "<expression> NN% · model microexpnet_xxs v1 · 12.3 ms": one face, its expression one of the model's labels
    expression, probability = browser.find_element(By.ID, "live-faces").text.split(" · ")[0].split(" ")
    (model,) = [entry for entry in client.get("/v1/models").json()["models"] if entry["name"] == "microexpnet_xxs"]
    assert expression in model["labels"] and re.fullmatch(r"\d+%", probability)

    # The overlay holds the box and its label around the face, in the frame's pixels, and nothing far from it.
    overlay = browser.find_element(By.ID, "overlay")
    drawn = decode_data_url(browser.execute_script(READ_CANVAS, overlay), cv2.IMREAD_UNCHANGED)[:, :, 3] > 0
    assert drawn.shape == CLIP_SIZE[::-1]
    x, y, w, h = ASTRONAUT_FACE
    x += (CLIP_SIZE[0] - astronaut().shape[1]) // 2
    near = drawn[max(y - 40, 0) : y + h + 20, x - CLIP_PAN - 20 : x + w + CLIP_PAN + 20]
    assert near.sum() > 200 and near.sum() == drawn.sum()

    # The screenshot shows the overlay's colour (the boxes over the video), which a photo never has.
    screenshot = tmp_path / "webcam.png"
    browser.set_window_size(*SCREENSHOT_SIZE)
    assert browser.save_screenshot(str(screenshot))
    red, green, blue = map(int, re.findall(r"\d+", browser.execute_script(READ_COLOR, overlay))[:3])
    shot = cv2.imread(str(screenshot)).astype(int)
    assert (np.abs(shot - [blue, green, red]).max(axis=2) < 30).sum() > 100

    browser.find_element(By.ID, "stop").click()
    wait.until(lambda driver: status(driver) == "Webcam stopped.")
    assert browser.execute_script("return document.getElementById('video').srcObject") is None
    assert not browser.find_element(By.ID, "live").is_displayed()

    # Every frame went up as a JPEG at the camera's size, and each after the answer to the one before.
    requests = predict_requests(server.log()[logged:])
    assert len(requests) >= 3 and {image for image, _, _ in requests} == {f"jpeg {CLIP_SIZE[0]}x{CLIP_SIZE[1]}"}
    for (_, _, ended), (_, started, _) in itertools.pairwise(requests):
        assert started >= ended - LOG_RESOLUTION_S


def test_a_server_error_during_webcam_mode_is_shown_and_the_page_recovers(
    browser: webdriver.Chrome, server: ServiceProcess
) -> None:
    wait = start_webcam(browser, server.url)
    wait.until(lambda driver: frames_per_second(driver) > 0)
    # A model that is gone from the server (removed after the page loaded its list) answers 404 for every frame.
    browser.execute_script(
        "const size = arguments[0]; size.add(new Option('gone', 'no_such_model')); size.value = 'no_such_model';",
        browser.find_element(By.ID, "size"),
    )
    wait.until(lambda driver: status(driver).startswith("Error"))
    assert status(browser).endswith("(unknown_model_size) (trying again)")
    assert browser.find_element(By.ID, "live").is_displayed()  # the camera stays on
    Select(browser.find_element(By.ID, "size")).select_by_value("microexpnet_s")
    wait.until(lambda driver: status(driver) == "Live")
    wait.until(lambda driver: "model microexpnet_s v" in driver.find_element(By.ID, "live-faces").text)
    browser.find_element(By.ID, "stop").click()


@pytest.mark.parametrize(
    ("camera", "error"),
    [(FAKE_CAMERA, "permission to use the camera was refused"), ((), "no camera found")],
    ids=["refused", "absent"],
)
def test_a_camera_refused_or_absent_is_shown_on_the_page(
    server: ServiceProcess, tmp_path: Path, camera: tuple[str, ...], error: str
) -> None:
    with chromium(tmp_path / "chromium-profile", *camera) as browser:
        wait = start_webcam(browser, server.url)
        wait.until(lambda driver: status(driver).startswith("Error"))
        assert status(browser) == f"Error: {error}"
        assert not browser.find_element(By.ID, "live").is_displayed()
        assert browser.find_element(By.ID, "start").is_displayed()


# Every host but the server's fails to resolve: a page that needs a CDN shows nothing.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


# ReDoc's sidebar shows a "by Redocly" logo from its CDN: blocked, as every other host is, and not missed.
REDOC_LOGO = "https://cdn.redoc.ly/"


def policy_violations(driver: webdriver.Chrome) -> list[str]:
    messages = [entry["message"] for entry in driver.get_log("browser")]
    return [message for message in messages if "Content Security Policy" in message and REDOC_LOGO not in message]


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/docs", ".swagger-ui .opblock-summary-path[data-path='/v1/predict']"),
        ("/redoc", "[data-section-id='tag/inference']"),
        ("/", "#controls"),
    ],
)
def test_docs_and_page_render_offline_under_their_policy(
    server: ServiceProcess, tmp_path: Path, path: str, rendered: str
) -> None:
    with chromium(tmp_path / "profile", NO_NETWORK) as driver:
        driver.get(f"{server.url}{path}")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, rendered))
        assert not policy_violations(driver)
        # The policy is there and enforced: an inline script does not run.
        driver.execute_script(
            "const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
            "document.body.appendChild(s);"
        )
        assert driver.execute_script("return window.injected") is None
        assert policy_violations(driver)
