"""Write docs/blend_slider.png: the live page of two compatible rules, its blend slider and its mask, in headless Chromium.

    python docs/blend_slider.py    # needs the test extras' playwright and Debian's chromium, as the browser tests do

autumn_leaves is rule A and starry_sky rule B; the mask is a left-to-right ramp (what painting across with the
slider going from 0 to 1 makes) and the slider is left at 0.5. The grid shown is grown 512 steps by `graft.Graft` in
PyTorch (the page's own rule, which tests/test_live_graft_browser.py holds equal) and written into the page: software
WebGL would take minutes to grow it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright

from nca_gradio.graft import Graft
from nca_gradio.live import page_html
from nca_gradio.loading import load_folder
from nca_gradio.render import grow

ROOT = Path(__file__).resolve().parents[1]
SIZE, STEPS = 128, 512
CHROMIUM = "/usr/bin/chromium"  # Debian's, as the browser tests use


def main() -> None:
    a, b = load_folder(ROOT / "models" / "autumn_leaves"), load_folder(ROOT / "models" / "starry_sky")
    ramp = torch.linspace(0, 1, SIZE).expand(SIZE, SIZE).contiguous()
    state = grow(Graft(a, b, ramp), size=SIZE, steps=STEPS, every=STEPS, keep_frames=False).state
    grown = state[0].permute(1, 2, 0).flatten().tolist()  # [row][column][channel], as writeState takes it
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        path = Path(folder) / "blend.html"
        path.write_text(page_html(a, "autumn_leaves", size=SIZE, zoom=3, autoplay=False, graft=b, graft_name="starry_sky", mask=ramp))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 900, "height": 560})
        page.goto(path.as_uri())
        page.wait_for_function("window.ncaPlayer")
        page.evaluate("state => { ncaPlayer.nca.writeState(new Float32Array(state)); ncaPlayer.nca.render(); }", grown)
        page.fill("[data-testid=nca-blend]", "0.5")
        page.dispatch_event("[data-testid=nca-blend]", "input")
        page.locator("#nca-live").screenshot(path=str(ROOT / "docs" / "blend_slider.png"))
        browser.close()
    print(f"wrote {ROOT / 'docs' / 'blend_slider.png'}")


if __name__ == "__main__":
    main()
