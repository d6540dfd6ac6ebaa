"""The studio's Live tab in headless Chromium: a bundled model grows at once, in the studio and mounted in another app."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
from conftest import SHOTS, launched, running_demo, set_number

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def host_app():
    """Another app that mounts the studio's tabs through render_tabs(), below its own heading."""
    import gradio as gr

    from nca_gradio.ui import launch_options, render_tabs

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    with gr.Blocks() as demo:
        gr.Markdown("# A toolkit that hosts the studio")
        render_tabs()
    with launched(demo, launch_options()) as url:
        yield url


CANVAS_SPREAD = """() => {
  const frame = document.querySelector('#nca-live-view iframe');
  const player = frame && frame.contentWindow && frame.contentWindow.ncaPlayer;
  if (!player) return -1;
  player.nca.render();
  const c = player.nca.canvas, ctx = document.createElement('canvas').getContext('2d');
  ctx.canvas.width = c.width; ctx.canvas.height = c.height; ctx.drawImage(c, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let lo = 255, hi = 0;
  for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }
  return hi - lo;
}"""


@contextlib.contextmanager
def new_page(browser):
    """A page of its own (each is a new session of the studio), closed afterwards even when the test fails."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    try:
        yield page
    finally:
        page.close()


@contextlib.contextmanager
def live_tab(browser, url: str):
    """The Live tab opened on a new page; yields the page, when the tab was clicked, and the page's errors."""
    with new_page(browser) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.get_by_role("tab", name="3 · Live").wait_for(timeout=60_000)
        opened = time.monotonic()
        page.get_by_role("tab", name="3 · Live").click()
        yield page, opened, errors


def test_live_tab_grows_a_bundled_model_within_two_seconds(browser):
    with running_demo() as url, live_tab(browser, url) as (page, opened, errors):
        page.wait_for_function(f"({CANVAS_SPREAD})() > 2", timeout=10_000, polling=50)  # the first steps show
        seconds = time.monotonic() - opened
        assert not errors, errors
        assert seconds <= 2.0, f"the Live view took {seconds:.1f} s to start growing"
        page.wait_for_function(f"({CANVAS_SPREAD})() > 60", timeout=60_000, polling=500)  # and it keeps growing
        frame = page.frame_locator("#nca-live-view iframe")
        frame.locator("[data-testid=nca-readout]", has_text="steps/s").wait_for(timeout=10_000)  # after its first second
        # Another pick restarts it with that model.
        page.locator("#nca-live-model input").click()
        page.get_by_role("option", name="pebbles").click()
        page.wait_for_function("document.querySelector('#nca-live-view iframe').title.startsWith('pebbles')", timeout=30_000)
        page.wait_for_function(f"({CANVAS_SPREAD})() > 60", timeout=60_000, polling=500)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "live.png"), full_page=True)
        # The button downloads the same page as one self-contained file.
        with page.expect_download(timeout=30_000) as download:
            page.locator("#nca-live-download").click()
        saved = Path(download.value.path()).read_text()
        assert "NCALive.mount" in saved and '"name":"pebbles (bundled)"' in saved and "<script src" not in saved


def test_live_tab_works_mounted_in_another_app(browser):
    with host_app() as url, live_tab(browser, url) as (page, _, errors):
        page.wait_for_function(f"({CANVAS_SPREAD})() > 60", timeout=60_000, polling=500)
        assert not errors, errors


def test_a_model_trained_in_the_session_joins_the_live_tab(browser, pebbles_path):
    """Training adds the model to the Grow tab's list; the Live tab follows and runs that model."""
    with running_demo() as url, new_page(browser) as page:
        page.goto(url)
        page.locator("#nca-texture input[type=file]").set_input_files(str(pebbles_path))
        page.locator("#nca-target img").wait_for(timeout=60_000)
        page.locator("#nca-preset").get_by_text("tiny").click()
        set_number(page, "nca-iterations", 2)
        set_number(page, "nca-size", 16)
        page.locator("#nca-start").click()
        page.locator("#nca-train-status").get_by_text("Finished").wait_for(timeout=300_000)
        page.get_by_role("tab", name="3 · Live").click()
        # The lists refresh after the run ends (the Grow tab's first, then the Live tab's).
        page.wait_for_function("document.querySelector('#nca-live-model input').value.startsWith('pebbles · seed')", timeout=30_000)
        label = page.locator("#nca-live-model input").input_value()
        page.wait_for_function(
            "(() => { const f = document.querySelector('#nca-live-view iframe');"
            " const p = f && f.contentWindow && f.contentWindow.ncaPlayer; return p && p.nca.stepCount > 0 && p.nca.model.hidden === 8; })()",
            timeout=30_000,
        )
        assert page.evaluate("document.querySelector('#nca-live-view iframe').contentWindow.ncaPlayer.nca.model.name") == label
