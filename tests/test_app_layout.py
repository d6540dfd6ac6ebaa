"""The studio in headless Chromium, each test on a fresh page: a phone-sized window, and Grow's step budget.

Every test opens its own page, so none depends on another. Screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SHOTS, set_number
from helpers import open_studio

from nca_gradio import studio

ROOT = Path(__file__).resolve().parent.parent
PHONE = {"width": 420, "height": 720}  # a phone's page area, below the browser's own bars
SLOW = 180_000  # ms: growing on a busy 2-core CPU

pytestmark = pytest.mark.browser


def test_on_a_phone_the_first_control_and_every_tab_are_in_view(browser, studio_url):
    page = open_studio(browser, studio_url, PHONE)
    try:
        page.screenshot(path=str(SHOTS / "phone-420-train.png"))
        upload = page.locator("#nca-texture").bounding_box()
        assert upload["y"] + upload["height"] <= PHONE["height"], f"the upload box ends at {upload['y'] + upload['height']:.0f} px"
        tabs = page.get_by_role("tab")
        assert tabs.count() == 5 and all(tabs.nth(i).is_visible() for i in range(5))  # none folded into a "…" menu
        assert not page.locator(".overflow-menu").is_visible()
        for i in range(5):
            box = tabs.nth(i).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert page.locator("#nca-about").is_visible()  # the long explanation is one closed line away
        page.get_by_role("tab", name="4 · Heal").click()
        page.locator("#nca-random").wait_for()
        page.screenshot(path=str(SHOTS / "phone-420-heal.png"))
        assert page.locator("#nca-damage-canvas").bounding_box()["y"] < PHONE["height"]
    finally:
        page.close()


def test_grow_says_what_fits_lowers_the_steps_and_keeps_the_last_result_on_a_refusal(browser, studio_url):
    page = open_studio(browser, studio_url, {"width": 1400, "height": 1000})
    try:
        page.get_by_role("tab", name="2 · Grow").click()
        set_number(page, "nca-canvas", 64)
        set_number(page, "nca-steps", 20)
        page.locator("#nca-grow").click()
        final = page.locator("#nca-final img")
        final.wait_for(timeout=SLOW)
        page.locator("#nca-grow-video video").wait_for(timeout=SLOW)
        grown_src = final.get_attribute("src")

        most = studio.most_steps(1024)  # the server runs in this process, on the same device
        set_number(page, "nca-canvas", 1024)
        fits = page.locator("#nca-grow-fits")
        fits.get_by_text("At 1024 px").wait_for(timeout=30_000)
        assert f"up to {most} steps" in fits.inner_text()
        steps = page.locator("#nca-steps input[type=number]")
        page.wait_for_function(f"el => parseFloat(el.value) <= {most}", arg=steps.element_handle(), timeout=30_000)
        if most >= 400:
            pytest.skip("this machine grows 400 steps at 1024 px; the refusal below needs a CPU")
        set_number(page, "nca-steps", 400)
        fits.get_by_text(re.compile(r"400 steps at 1024 px is more than")).wait_for(timeout=30_000)
        page.locator("#nca-grow").click()
        page.locator("[data-testid=toast-body]", has_text="too much work").first.wait_for(state="visible", timeout=30_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / "grow-refused.png"), full_page=True)
        assert final.get_attribute("src") == grown_src  # the last texture stays
        assert page.locator("#nca-grow-video video").is_visible()
        assert page.locator("#nca-final, #nca-grow-video").get_by_text("Error", exact=True).count() == 0  # no error badge over them
    finally:
        page.close()
