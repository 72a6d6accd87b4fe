"""A real browser on the page: Debian's chromium, driven by Playwright, generates a video and plays it.

Playwright cannot download its own browsers here, so the test launches the system's ``chromium`` (CI
installs it with apt-get); without one the test is skipped, saying so. The screenshot is kept under the
test's tmp dir and copied to ``tests/serve/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
TIMEOUT_MS = 120_000

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_generate_watch_the_progress_and_play_the_video(browser, shared_server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(shared_server.url, wait_until="domcontentloaded")

    banner = page.locator("#smoke-banner")
    banner.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert "noise" in banner.inner_text()

    prompt = "a paper boat drifting down a rainy street"
    page.fill("#prompt", prompt)
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.fill("#num_inference_steps", "2")
    page.click("#submit")

    card = page.locator("#jobs li", has_text=prompt)
    card.wait_for(timeout=TIMEOUT_MS)
    card.locator('.bar[aria-valuenow="100"]').wait_for(timeout=TIMEOUT_MS)
    assert card.get_attribute("data-status") == "completed"
    video = card.locator("video")
    video.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "video => video.readyState >= 1 && video.duration > 0", arg=video.element_handle(), timeout=TIMEOUT_MS
    )
    duration = video.evaluate("video => video.duration")
    assert duration == pytest.approx(9 / 24, abs=0.1)  # the 9 frames at 24 fps the form asked for
    assert "64x64" in card.locator(".params").inner_text()

    screenshot = tmp_path / "page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "page.png")
    assert not problems, problems
