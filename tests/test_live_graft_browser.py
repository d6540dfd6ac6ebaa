"""Two rules on the live page in headless Chromium: the page's graft is `nca_gradio.graft.Graft`, and its brush paints.

Fidelity as in test_live_browser.py: with fire rate 1 (no coin flips to share), 64 steps from the empty grid in the
page and in PyTorch (`x + Graft.update(x)`) must give the same picture (mean absolute RGB difference <= 0.01), for
compatible rules under a grey ramp of a mask and for unrelated rules (other channels and perception) split in two.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, SHOTS
from helpers import canvas_rgb, nca, offline_page, open_live_page, open_studio, turned_sobel

from nca_gradio import live
from nca_gradio.graft import Graft, split_mask
from nca_gradio.model import NCA, NCAConfig, to_rgb
from nca_gradio.model_folder import load_folder

STEPS = 64
SIZE = 64
TOLERANCE = 0.01

pytestmark = pytest.mark.browser


def bundled(name: str) -> NCA:
    return load_folder(ROOT / "models" / name)


def small_rule(perception: str, channels: int = 8, seed: int = 0) -> NCA:
    """A random rule whose update is small enough to stay in range for 64 steps yet changes the picture."""
    torch.manual_seed(seed)
    model = NCA(NCAConfig(channels=channels, hidden=32, perception=perception))
    with torch.no_grad():
        model.w2.weight.normal_(0, 0.01)
    return model.eval()


def ramp(size: int = SIZE) -> torch.Tensor:
    """A mask from 0 (all A) on the left edge to 1 (all B) on the right."""
    return torch.linspace(0, 1, size).expand(size, size).contiguous()


def open_graft_page(browser, a: NCA, b: NCA, folder: Path, mask: str | torch.Tensor = "vertical"):
    path = folder / "graft.html"
    path.write_text(live.page_html(a, "A", size=SIZE, autoplay=False, graft=b, graft_name="B", mask=mask))
    page = open_live_page(browser, path.as_uri())
    assert page.evaluate("window.ncaPlayer !== null"), page.inner_text("body")
    return page


def torch_grows(a: NCA, b: NCA, mask: torch.Tensor, steps: int = STEPS) -> torch.Tensor:
    """`steps` steps of the graft from the empty grid, every cell firing."""
    graft = Graft(a, b, mask)
    x = graft.empty_grid(1, *mask.shape)
    with torch.no_grad():
        for _ in range(steps):
            x = x + graft.update(x)
    return x


def page_grows(page, mask: torch.Tensor, steps: int = STEPS, angle: float = 0.0) -> np.ndarray:
    """The page's graft under `mask`, grown `steps` steps from the empty grid with fire rate 1: its canvas."""
    page.evaluate(
        "([mask, steps, angle]) => { const nca = ncaPlayer.nca; nca.fireRate = nca.fireRateB = 1; nca.angle = angle;"
        " nca.setMask(new Float32Array(mask)); nca.reset(); nca.step(steps); }",
        [mask.flatten().tolist(), steps, angle],
    )
    return canvas_rgb(page)


def picture(x: torch.Tensor) -> np.ndarray:
    return to_rgb(x.detach())[0].permute(1, 2, 0).numpy()


def assert_same_graft(page, a: NCA, b: NCA, mask: torch.Tensor, angle: float = 0.0, reference: tuple[NCA, NCA] | None = None) -> np.ndarray:
    """The page grows what PyTorch grows (with `reference`'s rules when they differ from the page's, e.g. turned)."""
    expected = picture(torch_grows(*(reference or (a, b)), mask))
    got = page_grows(page, mask, angle=angle)
    for side, columns in (("A", slice(0, SIZE // 4)), ("B", slice(-SIZE // 4, None))):
        moved = np.abs(expected[:, columns] - 0.5).mean()
        assert moved > 5 * TOLERANCE, f"rule {side} hardly changes the grid ({moved:.4f}): the comparison would prove nothing"
    difference = np.abs(got - expected).mean()
    assert difference <= TOLERANCE, f"page and graft.Graft differ by {difference:.4f} after {STEPS} steps"
    return got


def test_compatible_rules_blend_like_pytorch(browser, tmp_path):
    """pebbles and coffee_beans (12 channels, 96 hidden, Sobel) blended by a left-to-right ramp."""
    a, b = bundled("pebbles"), bundled("coffee_beans")
    page = open_graft_page(browser, a, b, tmp_path)
    try:
        got = assert_same_graft(page, a, b, ramp())
        hard = picture(torch_grows(a, b, (ramp() >= 0.5).float()))
        assert np.abs(got - hard).mean() > 2 * TOLERANCE, "the grey mask grew what a hard split grows: nothing blended"
        assert page.locator("[data-testid=nca-blend]").count() == 1 and page.locator("[data-testid=nca-fill]").count() == 1
    finally:
        page.close()


def test_unrelated_rules_each_run_their_own(browser, tmp_path):
    """pebbles (12 channels, Sobel) beside an 8-channel isotropic rule: A left, B right, each on its own channels."""
    a, b = bundled("pebbles"), small_rule("isotropic")
    mask = split_mask("vertical", SIZE, SIZE)
    page = open_graft_page(browser, a, b, tmp_path)
    try:
        assert page.evaluate("ncaPlayer.nca.readMask()") is not None
        assert page.evaluate("Array.from(ncaPlayer.nca.readMask())") == mask.flatten().tolist()  # the page's own start
        assert_same_graft(page, a, b, mask)
        state = np.asarray(page.evaluate("Array.from(ncaPlayer.nca.readState())"), dtype=np.float32).reshape(SIZE, SIZE, 12)
        assert np.abs(state[:, SIZE // 2 + 2 : -2, 8:]).max() == 0, "rule B wrote channels it does not have"
        assert page.locator("[data-testid=nca-blend]").count() == 0, "unrelated rules cannot blend: no blend slider"
        assert page.locator("[data-testid=nca-fill]").count() == 0
    finally:
        page.close()


def test_rotation_turns_the_sobel_rule_of_a_graft(browser, tmp_path):
    """Sobel as rule B, after an isotropic A: the kernels are shared out by value, and the rotation still finds Sobel's."""
    a, b = small_rule("isotropic", seed=1), small_rule("sobel", channels=12, seed=2)
    angle = math.radians(30)
    mask = split_mask("vertical", SIZE, SIZE)
    page = open_graft_page(browser, a, b, tmp_path)
    try:
        assert page.locator("input[aria-label=rotation]").count() == 1
        got = assert_same_graft(page, a, b, mask, angle, reference=(a, turned_sobel(b, angle)))
        assert np.abs(got - picture(torch_grows(a, b, mask))).mean() > 2 * TOLERANCE  # the angle matters
    finally:
        page.close()


def painted(mask: np.ndarray, x: float, y: float, radius: float, value: float) -> np.ndarray:
    """`mask` with a disc (on the torus, like erase) set to `value`: what the brush should leave."""
    n = mask.shape[0]
    centres = np.arange(n) + 0.5
    dx, dy = np.abs(centres[None, :] - x), np.abs(centres[:, None] - y)
    dx, dy = np.minimum(dx, n - dx), np.minimum(dy, n - dy)
    return np.where(dx**2 + dy**2 < radius**2, value, mask).astype(np.float32)


def click_cell(page, x: float, y: float) -> None:
    """Press and release the pointer over cell position (x, y) (in cells, x = column)."""
    box = page.locator("[data-testid=nca-canvas]").bounding_box()
    page.mouse.move(box["x"] + box["width"] * x / SIZE, box["y"] + box["height"] * y / SIZE)
    page.mouse.down()
    page.mouse.up()


def read_mask(page) -> np.ndarray:
    return np.asarray(page.evaluate("Array.from(ncaPlayer.nca.readMask())"), dtype=np.float32).reshape(SIZE, SIZE)


def set_input(page, label: str, value: float) -> None:
    page.eval_on_selector(f"input[aria-label='{label}']", f"el => {{ el.value = {value}; el.dispatchEvent(new Event('input')); }}")


def test_the_brush_paints_the_mask_where_it_touches(browser, tmp_path):
    """Paint B (at the blend's value) and paint A set the mask in the brush's disc and nowhere else; Fill all sets it all."""
    a, b = bundled("pebbles"), bundled("starry_sky")
    page = open_graft_page(browser, a, b, tmp_path)
    try:
        set_input(page, "brush size", 6)
        set_input(page, "blend", 0.3)
        before = read_mask(page)
        assert page.eval_on_selector("[data-testid=nca-brush-mode]", "el => el.value") == "b"  # painting B is the default
        click_cell(page, 16, 20)  # in A's half
        after = read_mask(page)
        assert np.array_equal(after, painted(before, 16, 20, 6, 0.3)), "paint B did not set just the disc to the blend"
        assert (after != before).sum() > 80  # about pi 6^2 cells
        page.select_option("[data-testid=nca-brush-mode]", "a")
        click_cell(page, 48, 62)  # in B's half, across the bottom edge: the disc wraps to the top rows
        wrapped = read_mask(page)
        assert np.array_equal(wrapped, painted(after, 48, 62, 6, 0.0)) and wrapped[0, 48] == 0 and wrapped[0, 40] == 1
        page.select_option("[data-testid=nca-brush-mode]", "erase")
        page.evaluate("ncaPlayer.nca.step(8)")
        click_cell(page, 40, 30)
        assert np.array_equal(read_mask(page), wrapped), "the erase brush changed the mask"
        page.click("[data-testid=nca-fill]")
        assert np.allclose(read_mask(page), 0.3)
        page.click("[data-testid=nca-reset]")
        assert np.allclose(read_mask(page), 0.3), "reset clears the grid, not the painted layout"
        page.select_option("select[aria-label='canvas size']", "128")
        assert page.evaluate("ncaPlayer.nca.readMask().length") == 128 * 128
    finally:
        page.close()


def test_graft_export_animates_offline(browser, tmp_path):
    """`nca export A --graft B`, opened from disk with every network request refused, grows and keeps changing."""
    out = tmp_path / "graft.html"
    result = nca("export", ROOT / "models" / "pebbles", "--graft", ROOT / "models" / "coffee_beans", "-o", out, "--size", "64")
    assert result.returncode == 0, result.stderr
    context, page, fetched, errors = offline_page(browser)
    try:
        page.goto(out.as_uri())
        page.wait_for_function("window.ncaPlayer && ncaPlayer.nca.stepCount >= 32", timeout=120_000)
        first = canvas_rgb(page)
        start = page.evaluate("ncaPlayer.nca.stepCount")
        page.wait_for_function(f"ncaPlayer.nca.stepCount >= {start + 16}", timeout=120_000)
        later = canvas_rgb(page)
        assert not errors and not fetched, (errors, fetched)
        assert later.std() > 0.1 and np.abs(later - first).mean() > 0.005, "the grafted page did not animate"
        assert "pebbles" in page.inner_text("[data-testid=nca-hint]") and "coffee_beans" in page.inner_text("[data-testid=nca-hint]")
    finally:
        context.close()


def test_the_studio_grafts_a_second_model_and_downloads_that_page(browser, studio_url):
    """The Live tab's "Graft with" list: none at first; a pick runs both rules with the brush, and the download is that page."""
    page = open_studio(browser, studio_url, {"width": 1300, "height": 1000})
    try:
        page.get_by_role("tab", name="3 · Live").click()
        assert page.locator("#nca-live-graft input").input_value() == live.NO_GRAFT
        page.locator("#nca-live-model input").click()
        page.get_by_role("option", name="pebbles").click()
        page.locator("#nca-live-graft input").click()
        page.get_by_role("option", name="coffee_beans").click()
        page.wait_for_function("document.querySelector('#nca-live-view iframe').title.startsWith('pebbles (bundled) + coffee_beans')",
                               timeout=30_000)
        frame = page.frame_locator("#nca-live-view iframe")
        frame.locator("[data-testid=nca-blend]").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelector('#nca-live-view iframe').contentWindow.ncaPlayer.nca.stepCount > 64", timeout=60_000)
        frame.locator("[data-testid=nca-show-mask]").check()
        page.screenshot(path=str(SHOTS / "live-graft.png"), full_page=True)
        with page.expect_download(timeout=30_000) as download:
            page.locator("#nca-live-download").click()
        saved = Path(download.value.path()).read_text()
        assert saved.count('"w1":') == 2 and '"name":"coffee_beans (bundled)"' in saved and "<script src" not in saved
    finally:
        page.close()
