"""The studio in a real browser (Debian chromium driven by Playwright): every tab, as a user clicks through it.

It uploads a texture and trains a few iterations, grows a model, damages the
texture by clicking on it, checks that a corrupt upload shows an error in the
page, and saves a screenshot of each tab under test-artifacts/screenshots/.
Each test opens a page of its own, a new session of the studio: none relies
on what another did, and each runs alone or in any order.
"""

from __future__ import annotations

import re
import tempfile
import time

import pytest
from conftest import SHOTS, running_demo, set_number
from playwright.sync_api import expect

SLOW = 180_000  # ms: training and growing on a busy 2-core CPU

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, studio_url):
    """A new page, so a new session: no model trained, nothing grown."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(studio_url)
        page.wait_for_selector("#nca-start", timeout=60_000)
        yield page
    finally:
        page.close()


def point_on_image(image, fx: float, fy: float) -> tuple[float, float]:
    """Page coordinates of a point given as fractions of the picture (centred in its box, never enlarged)."""
    box = image.bounding_box()
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = min(box["width"] / width, box["height"] / height, 1.0)
    left, top = box["x"] + (box["width"] - width * scale) / 2, box["y"] + (box["height"] - height * scale) / 2
    return left + fx * width * scale, top + fy * height * scale


def expect_toast(page, text: str) -> None:
    """Wait until an error notice with this text is shown in the page (and has finished sliding in)."""
    page.locator("[data-testid=toast-body]", has_text=re.compile(re.escape(text))).first.wait_for(state="visible", timeout=30_000)
    page.wait_for_timeout(500)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def shoot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def grow(page, canvas: int, steps: int) -> None:
    """Grow the Grow tab's model (on a new page, the first bundled one) and wait for its video and final texture."""
    open_tab(page, "2 · Grow")
    set_number(page, "nca-canvas", canvas)
    set_number(page, "nca-steps", steps)
    page.locator("#nca-grow").click()
    page.locator("#nca-final img").wait_for(timeout=SLOW)
    page.locator("#nca-grow-video video").wait_for(timeout=SLOW)


def test_a_corrupt_upload_shows_an_error_in_the_page(page):
    page.locator("#nca-texture input[type=file]").set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n not really a png"}]
    )
    expect_toast(page, "the uploaded data is not an image this app can read")
    shoot(page, "0-corrupt-upload")


def test_an_example_can_be_picked(page):
    page.locator("#nca-examples img").nth(1).click()
    page.locator("#nca-texture").get_by_text("coffee_beans").wait_for(timeout=30_000)
    page.locator("#nca-target img").wait_for(timeout=30_000)


def test_model_sizes_count_the_numbers_of_the_chosen_perception(page):
    sizes = page.locator("#nca-preset")
    sizes.get_by_text("texture · 5,856 numbers").wait_for()
    page.locator("#nca-isotropic input").check()
    sizes.get_by_text("texture · 4,704 numbers").wait_for(timeout=30_000)  # round shapes learn fewer numbers
    assert sizes.locator("input[value=fast]").is_checked()  # the choice itself is kept
    page.locator("#nca-isotropic input").uncheck()
    sizes.get_by_text("texture · 5,856 numbers").wait_for(timeout=30_000)


def test_upload_and_train_a_few_iterations_then_the_other_tabs_offer_the_model(page, pebbles_path):
    page.locator("#nca-texture input[type=file]").set_input_files(str(pebbles_path))
    page.locator("#nca-texture").get_by_text("pebbles").wait_for(timeout=30_000)
    page.locator("#nca-target img").wait_for(timeout=30_000)
    page.locator("#nca-preset").get_by_text("tiny").click()
    page.locator("#nca-loss input").click()
    page.get_by_role("option", name=re.compile("^patch")).click()
    set_number(page, "nca-iterations", 4)
    set_number(page, "nca-size", 32)
    page.locator("#nca-objects").get_by_text("light", exact=True).click()
    page.locator("#nca-healing input").check()
    page.locator("#nca-start").click()
    page.locator("#nca-train-status").get_by_text("Finished").wait_for(timeout=SLOW)
    label = "pebbles · seed · light objects · heals · 4 it"
    status = page.locator("#nca-train-status").inner_text()
    assert "iteration 4 of 4" in status and f"saved as {label}" in status
    page.locator("#nca-train-preview img").wait_for()
    shoot(page, "1-train")
    open_tab(page, "2 · Grow")
    expect(page.locator("#nca-grow-model input")).to_have_value(label, timeout=30_000)
    open_tab(page, "5 · Hub")
    expect(page.locator("#nca-share-model input")).to_have_value(label, timeout=30_000)


def test_grow_a_model(page):
    grow(page, canvas=96, steps=60)
    assert page.locator("#nca-final img").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [96, 96]
    shoot(page, "2-grow")


def test_damage_by_clicking_on_the_texture_and_watch_it_heal(page):
    grow(page, canvas=64, steps=200)  # grown out, so the twin it heals back to is a settled texture
    open_tab(page, "4 · Heal")
    canvas = page.locator("#nca-damage-canvas img")
    canvas.wait_for(timeout=30_000)
    page.mouse.click(*point_on_image(canvas, 0.25, 0.75))
    x_box = page.locator("#nca-damage-x input[type=number]")
    page.wait_for_function("el => Math.abs(parseFloat(el.value) - 0.25) < 0.03", arg=x_box.element_handle(), timeout=30_000)
    assert abs(float(page.locator("#nca-damage-y input[type=number]").input_value()) - 0.75) < 0.03
    set_number(page, "nca-heal-steps", 40)
    page.locator("#nca-heal").click()
    page.locator("#nca-heal-video video").wait_for(timeout=SLOW)
    page.locator("#nca-heal-note").get_by_text("healed").wait_for(timeout=SLOW)
    page.locator("#nca-heal-plot .mark-line path").first.wait_for(timeout=30_000)  # the curves drawn, for the screenshot
    shoot(page, "3-damage")


def test_hub_tab_offers_get_and_share(page):
    open_tab(page, "5 · Hub")
    page.locator("#nca-pull").wait_for()
    assert page.locator("#nca-share-model input").input_value().endswith("(bundled)")
    page.locator("#nca-pull").click()
    expect_toast(page, "Type the repo id of a model")
    shoot(page, "4-hub")


def test_a_closed_page_takes_its_files_with_it(browser, monkeypatch, tmp_path):
    """A session's files (its nca-studio-* folder) go when Gradio drops its state after the page closes.

    Gradio waits an hour after a page closes; GRADIO_IS_E2E_TEST shortens that to a second.
    """
    from nca_gradio.ui import launch_options

    monkeypatch.setenv("GRADIO_IS_E2E_TEST", "1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with running_demo(launch_options()) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#nca-start", timeout=60_000)
        grow(page, canvas=32, steps=10)
        folders = list(tmp_path.glob("nca-studio-*"))
        assert len(folders) == 1 and list(folders[0].rglob("*.png")), "the grown texture is in the session's folder"
        page.close()
        deadline = time.monotonic() + 60
        while folders[0].exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not folders[0].exists()
