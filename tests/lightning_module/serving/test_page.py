"""The page in a real browser: headless Chromium (the Debian ``chromium`` and ``chromium-driver``
packages, driven by selenium) uploads a generated clip once and shows the model's genre, the
model's notes and what each feature was trained on, under a CSP without ``'unsafe-inline'``.

Skipped only when Chromium or its driver cannot be found. ``UPDATE_DOCS_SCREENSHOTS=1`` also
writes the screenshot to docs/service_page.png (the README's picture; ``SCREENSHOT_CHECKPOINT``
serves that model instead of the tiny test one); otherwise it stays in the test's temp folder,
so a test run never changes the repository.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from datamodules.io import atomic_path
from lightning_module.inference.tagger import Tagger
from tests.conftest import REPO_ROOT
from tests.lightning_module.serving.conftest import ThreadServer, access_log, make_service, music

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = REPO_ROOT / "docs" / "service_page.png"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium not found: apt-get install -y chromium chromium-driver",
)


def chromium_driver(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1000,1250",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations land there
    # An explicit driver path: selenium never looks for (or downloads) a browser or driver.
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def test_page_tags_a_dropped_file(trained_checkpoint, base_tagger, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = music(tmp_path / "three_songs.mp3", seconds=24.0, genres=("classical", "rock", "hiphop"))
    model = os.environ.get("SCREENSHOT_CHECKPOINT")
    tagger = Tagger.from_file(model) if model else base_tagger
    service = make_service(Path(model or trained_checkpoint), tmp_path / "srv", tagger)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))
    with ThreadServer(service) as running, access_log() as records:
        with running.client() as client:
            expected = client.post("/v1/tag", files={"file": (clip.name, clip.read_bytes())})
            model_info = client.get("/v1/model").json()
        driver = chromium_driver(profile)
        try:
            before = len(records)  # the page's own requests from here on
            driver.get(running.url + "/")
            WebDriverWait(driver, 30).until(
                lambda d: "genres" in d.find_element(By.ID, "model").text
            )
            driver.find_element(By.ID, "file").send_keys(str(clip))
            WebDriverWait(driver, 60).until(
                lambda d: (
                    d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                    in ("done", "error")
                )
            )
            state = driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")
            status = driver.find_element(By.ID, "status").text
            shown = driver.find_element(By.ID, "genre-top").text
            bars = driver.find_elements(By.CSS_SELECTOR, "#genre .bar")
            features = driver.find_elements(By.CSS_SELECTOR, "#features tr")
            basis = [
                (row.get_attribute("title"), row.find_element(By.CLASS_NAME, "basis").text)
                for row in features
            ]
            notes = driver.find_element(By.ID, "notes")
            notes_shown, notes_text = notes.is_displayed(), notes.text
            console = driver.get_log("browser")
            legend = driver.find_element(By.ID, "legend").text
            shot = tmp_path / "service_page.png"
            driver.save_screenshot(str(shot))
        finally:
            driver.quit()
        page_requests = [(r["method"], r["path"]) for r in records[before:]]
    assert state == "done", status
    # one upload per page action: the clip and its timeline come back from one request
    assert page_requests.count(("POST", "/v1/tag")) == 1, page_requests
    assert ("GET", "/page.js") in page_requests and ("GET", "/page.css") in page_requests
    # nothing the page needs was refused by its Content-Security-Policy
    violations = [e["message"] for e in console if "Content Security Policy" in e["message"]]
    assert violations == []
    # the demo model's note is on the page, visibly
    assert model_info["notes"] and notes_shown
    assert all(note in notes_text for note in model_info["notes"])
    assert "synthetic demo set" in notes_text
    assert shown == expected.json()["genre"][0]["label"]
    assert len(bars) == len(service.spec.genre_names)  # every genre, as bars
    assert len(features) == len(expected.json()["features"])
    # next to each feature, what it was trained on (the prediction's feature_basis)
    trained_on = expected.json()["feature_basis"]
    for (title, small), name in zip(basis, expected.json()["features"], strict=True):
        assert small == "trained on: " + trained_on[name]
        assert title == f"{name} was trained on {trained_on[name]}"
    assert "genre: " in legend and "mood: " in legend  # the timeline was drawn
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        with atomic_path(SCREENSHOT) as out:
            shutil.copyfile(shot, out)
