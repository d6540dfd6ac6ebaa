"""What the studio says follows what it does, in headless Chromium: numbered tabs, a status line that follows the
upload, one error for a bad upload, Stop that says so without covering the loss chart, and the Live model list in full
on a phone. Each test opens its own page (a new session)."""

from __future__ import annotations

import re

import pytest
from conftest import SHOTS
from helpers import open_studio

pytestmark = pytest.mark.browser
PHONE = {"width": 420, "height": 800}
DESKTOP = {"width": 1280, "height": 1000}
BROKEN = {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n not really a png"}


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_every_tab_is_numbered(browser, studio_url):
    page = open_studio(browser, studio_url, PHONE)
    try:
        names = [page.get_by_role("tab").nth(i).inner_text().strip() for i in range(page.get_by_role("tab").count())]
        assert [re.match(r"(\d) · ", name) and int(name[0]) for name in names] == list(range(1, len(names) + 1)), names
    finally:
        page.close()


def test_the_live_model_list_is_whole_on_a_phone(browser, studio_url):
    page = open_studio(browser, studio_url, PHONE)
    try:
        page.get_by_role("tab", name="Live").click()
        picker = page.locator("#nca-live-model")
        picker.wait_for()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / "phone-420-live.png"), full_page=True)
        box = picker.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        shown = picker.locator("input")
        clipped = shown.evaluate("el => el.scrollWidth - el.clientWidth")
        assert clipped <= 0, f"the model's name is cut off by {clipped} px in a {box['width']:.0f} px list"
        assert box["width"] >= 0.8 * PHONE["width"] - 64, f"the list is squeezed to {box['width']:.0f} px"
    finally:
        page.close()


def test_the_status_follows_the_upload_and_a_bad_one_is_one_error(browser, studio_url, pebbles_path):
    page = open_studio(browser, studio_url, DESKTOP)
    try:
        status = page.locator("#nca-train-status")
        page.locator("#nca-texture input[type=file]").set_input_files(str(pebbles_path))
        page.locator("#nca-target img").wait_for(timeout=60_000)
        status.get_by_text("pebbles.png").wait_for(timeout=30_000)
        assert "choose a texture" not in status.inner_text()
        page.locator("#nca-texture button[aria-label='Clear']").first.click()
        page.locator("#nca-texture input[type=file]").set_input_files(files=[BROKEN])
        page.locator("[data-testid=toast-body]", has_text="not an image").first.wait_for(state="visible", timeout=30_000)
        status.get_by_text("Not loaded").wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / "bad-upload-after-good.png"), full_page=True)
        assert page.locator("#nca-target img").count() == 0  # the square of the file before is not left beside this one
        badges = page.locator("#nca-target, #nca-train-status, #nca-train-preview, #nca-loss-plot").get_by_text("Error", exact=True)
        assert badges.count() == 0, "a panel shows an Error badge besides the one notice"
    finally:
        page.close()


def test_stop_says_so_on_its_button_and_nothing_covers_the_loss_chart(browser, studio_url, pebbles_path):
    from conftest import set_number

    page = open_studio(browser, studio_url, DESKTOP)
    try:
        stop = page.locator("#nca-stop")
        stop.click()  # nothing to stop yet: it stays Stop, with no notice
        page.wait_for_timeout(1000)
        assert stop.inner_text().strip() == "Stop" and page.locator("[data-testid=toast-body]").count() == 0
        page.locator("#nca-texture input[type=file]").set_input_files(str(pebbles_path))
        page.locator("#nca-target img").wait_for(timeout=60_000)
        page.locator("#nca-preset label", has_text="seed").click()
        set_number(page, "nca-size", 16)
        page.locator("#nca-start").click()
        page.locator("#nca-train-status").get_by_text("Training:").wait_for(timeout=120_000)
        stop.click()
        page.locator("#nca-stop", has_text="Stopping").wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        chart = page.locator("#nca-loss-plot").bounding_box()
        for toast in page.locator("[data-testid=toast-body]").all():
            if toast.is_visible():
                assert not overlaps(toast.bounding_box(), chart), "a notice covers the loss chart"
        page.locator("#nca-train-status").get_by_text("Stopped").wait_for(timeout=120_000)
        page.wait_for_function("el => el.innerText.trim() === 'Stop'", arg=page.locator("#nca-stop").element_handle(), timeout=30_000)
        assert stop.is_enabled()  # the run is over: Stop is back for the next one
    finally:
        page.close()


def test_a_stop_pressed_while_the_run_waits_in_the_queue_is_kept(browser, studio_url, pebbles_path):
    """One training at a time (NCA_TRAIN_CONCURRENCY 1): a second session's Start waits, and its Stop must not be
    forgotten when its turn comes (the run used to clear it as it began, then train to the end)."""
    from conftest import set_number

    def started(page) -> None:
        page.locator("#nca-texture input[type=file]").set_input_files(str(pebbles_path))
        page.locator("#nca-target img").wait_for(timeout=60_000)
        page.locator("#nca-preset label", has_text="seed").click()
        set_number(page, "nca-size", 16)
        page.locator("#nca-start").click()

    first, second = open_studio(browser, studio_url, DESKTOP), open_studio(browser, studio_url, DESKTOP)
    try:
        started(first)
        first.locator("#nca-train-status").get_by_text("Training:").wait_for(timeout=120_000)
        started(second)  # waits in the queue behind the first
        second.locator("#nca-stop").click()
        second.locator("#nca-stop", has_text="Stopping").wait_for(timeout=30_000)
        first.locator("#nca-stop").click()
        first.locator("#nca-train-status").get_by_text("Stopped").wait_for(timeout=120_000)
        second.get_by_text("stopped while it waited its turn").first.wait_for(timeout=120_000)
        assert second.locator("#nca-train-status").get_by_text("Training:").count() == 0  # it never trained
        second.wait_for_function("el => el.innerText.trim() === 'Stop'", arg=second.locator("#nca-stop").element_handle(),
                                 timeout=30_000)
    finally:
        first.close()
        second.close()


def test_a_start_model_shows_its_size_and_round_shapes_which_cannot_be_changed(browser, studio_url):
    page = open_studio(browser, studio_url, DESKTOP)
    try:
        size_choices, round_shapes = page.locator("#nca-preset input"), page.locator("#nca-isotropic input")
        assert size_choices.first.is_enabled() and round_shapes.is_enabled()
        start = page.locator("#nca-start-from input")
        start.fill("hubble_dots (bundled)")  # a texture-size rule with isotropic perception (the studio starts at fast)
        start.press("Enter")
        page.wait_for_function("el => el.disabled", arg=size_choices.first.element_handle(), timeout=30_000)
        assert page.locator("#nca-preset input:checked").get_attribute("value") == "texture"
        assert round_shapes.is_checked() and not round_shapes.is_enabled()
        start.fill("nothing (a new rule)")
        start.press("Enter")
        page.wait_for_function("el => !el.disabled", arg=size_choices.first.element_handle(), timeout=30_000)
        assert round_shapes.is_enabled()
    finally:
        page.close()


def test_healing_steps_lowered_for_a_large_canvas_say_so_beside_the_slider(browser, studio_url):
    from conftest import set_number

    from nca_gradio import studio

    most = studio.most_heal_steps(256)
    if most >= 300:
        pytest.skip("this machine heals 300 steps at 256 px: nothing is lowered")
    page = open_studio(browser, studio_url, DESKTOP)
    try:
        page.get_by_role("tab", name="2 · Grow").click()
        set_number(page, "nca-canvas", 256)
        set_number(page, "nca-steps", 20)
        page.locator("#nca-grow").click()
        page.locator("#nca-final img").wait_for(timeout=180_000)
        page.get_by_role("tab", name="Heal").click()
        slider = page.locator("#nca-heal-steps")
        slider.get_by_text("lowered from 300").wait_for(timeout=30_000)
        lowered = int(slider.locator("input[type=number]").input_value())
        assert lowered <= most and f"lowered from 300 to {lowered}" in slider.inner_text()
    finally:
        page.close()
