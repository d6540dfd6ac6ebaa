"""`nca export --format shadertoy` in headless Chromium (SwiftShader WebGL2), through a harness that runs the two files
as shadertoy.com does (tests/shadertoy_harness.js): Buffer A steps the model's rule, Image shows it, the mouse erases.

Fidelity: with fire rate 1 (every cell fires, so no coin flips to share), 64 frames must give PyTorch's picture
(mean absolute RGB difference <= 0.01), from the empty grid and from a grid with texture in it: with every cell
firing, the empty grid stays uniform, so only the second start holds the kernels and the layout to account.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from reference import rollout

from nca_gradio import live, shadertoy
from nca_gradio.model import NCA, PRESETS, NCAConfig, to_rgb
from nca_gradio.model_folder import load_folder

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("one_torch_thread")]  # Chromium's software WebGL needs the cores

HARNESS = (Path(__file__).parent / "shadertoy_harness.js").read_text()
SIZE = 64  # cells a side
FRAMES = 64
TOLERANCE = 0.01


def export(model: NCA, folder: Path, size: int = SIZE) -> dict[str, str]:
    """The exported files, by name, written by the real export."""
    live.export(model, folder, "shadertoy", "test", size)
    return {name: (folder / name).read_text() for name in shadertoy.FILES}


def layers(model: NCA) -> int:
    return -(-model.channels // 4)


class Toy:
    """The two passes in the harness on a canvas of width x height pixels, in a page of its own."""

    def __init__(self, browser, files: dict[str, str], width: int, height: int) -> None:
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.set_content("<html><body></body></html>")
        self.page.add_script_tag(content=HARNESS)
        self.width, self.height = width, height
        self.page.evaluate("([a, i, w, h]) => { window.toy = new Shadertoy(a, i, w, h); }",
                           [files["buffer_a.glsl"], files["image.glsl"], width, height])
        assert not self.errors, self.errors

    def run(self, frames: int, mouse: tuple[float, float, float, float] = (0, 0, 0, 0)) -> None:
        self.page.evaluate("([n, mouse]) => { toy.mouse = mouse; toy.run(n); }", [frames, list(mouse)])

    def buffer(self) -> np.ndarray:
        """Buffer A: (height, width, 4), row 0 first (the harness's bottom row: the grid's row 0)."""
        return np.frombuffer(base64.b64decode(self.page.evaluate("toy.readBuffer()")), np.float32).reshape(self.height, self.width, 4)

    def grid(self, channels: int, size: int = SIZE) -> torch.Tensor:
        """The grid Buffer A holds, as a (1, C, N, N) tensor: layer t of cell (x, y) at pixel (x + t*N, y)."""
        values = self.buffer()
        planes = [values[:size, t * size:(t + 1) * size].transpose(2, 0, 1) for t in range(-(-channels // 4))]
        return torch.from_numpy(np.concatenate(planes)[:channels].copy()).unsqueeze(0)

    def load(self, x: torch.Tensor) -> None:
        """Put grid `x` in Buffer A as its last frame and go on from frame 1 (frame 0 is the empty grid)."""
        size, planes = x.shape[-1], torch.cat([x[0], torch.zeros(-x.shape[1] % 4, *x.shape[2:])])
        values = np.zeros((self.height, self.width, 4), np.float32)
        for t in range(planes.shape[0] // 4):
            values[:size, t * size:(t + 1) * size] = planes[4 * t:4 * t + 4].permute(1, 2, 0).numpy()
        self.page.evaluate("(values) => { toy.writeBuffer(values); toy.frame = 1; }", base64.b64encode(values.tobytes()).decode())

    def image(self) -> np.ndarray:
        """What Image shows, (height, width, 3) in [0, 1], the top row first as on screen."""
        pixels = np.frombuffer(base64.b64decode(self.page.evaluate("toy.readImage()")), np.uint8).reshape(self.height, self.width, 4)
        return pixels[::-1, :, :3] / np.float32(255)

    def close(self) -> None:
        assert not self.errors, self.errors
        self.page.close()


def picture(x: torch.Tensor) -> np.ndarray:
    return to_rgb(x.detach())[0].permute(1, 2, 0).numpy()


def every_cell_fires(model: NCA) -> NCA:
    """The same weights with fire rate 1."""
    ones = NCA(replace(model.config, fire_rate=1.0))
    ones.load_state_dict(model.state_dict())
    return ones.eval()


def random_model(config: NCAConfig, scale: float) -> NCA:
    """Random weights, the last layer scaled small enough to stay in range for 64 steps yet change the picture."""
    torch.manual_seed(0)
    model = NCA(config)
    with torch.no_grad():
        model.w2.weight.normal_(0, scale)
    return model.eval()


MODELS = {
    "pebbles": lambda: load_folder(ROOT / "models" / "pebbles"),  # sobel, 12 channels, 96 hidden
    "hubble_dots": lambda: load_folder(ROOT / "models" / "hubble_dots"),  # isotropic perception
    "fast": lambda: random_model(PRESETS["fast"], 0.0015),  # 8 channels, 48 hidden
    "odd": lambda: random_model(NCAConfig(channels=5, hidden=7), 0.002),  # padded lanes in a layer and a hidden group
}


def textured_start(model: NCA, name: str) -> torch.Tensor:
    """A grid with texture in it: a half-grown one for a trained model, noise for random weights."""
    if name in ("pebbles", "hubble_dots"):
        return rollout(model, model.empty_grid(1, SIZE), 32, torch.Generator().manual_seed(0)).detach()
    return torch.randn(1, model.channels, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 0.1


@pytest.mark.parametrize("start", ["empty", "textured"])
@pytest.mark.parametrize("name", list(MODELS))
def test_buffer_a_steps_like_pytorch(browser, tmp_path, name, start):
    model = MODELS[name]()
    ones = every_cell_fires(model)
    toy = Toy(browser, export(ones, tmp_path), layers(model) * SIZE, SIZE)
    try:
        if start == "empty":
            x = model.empty_grid(1, SIZE)
            toy.run(1 + FRAMES)  # frame 0 writes the empty grid, frames 1..64 step it
        else:
            x = textured_start(model, name)
            toy.load(x)
            toy.run(FRAMES)
        expected = rollout(ones, x, FRAMES)  # fire rate 1: every cell's coin comes up
        got = toy.grid(model.channels)
    finally:
        toy.close()
    difference = np.abs(picture(got) - picture(expected)).mean()
    moved = np.abs(picture(expected) - picture(x)).mean()
    assert moved > 2 * TOLERANCE, f"the rule hardly changes this grid ({moved:.4f}): the comparison would prove nothing"
    assert difference <= TOLERANCE, f"Shadertoy and PyTorch differ by {difference:.4f} after {FRAMES} frames"
    assert (got - expected).abs().max() < 0.1  # every channel, not only the visible three (0.035 at most measured)


@pytest.mark.parametrize("zoom", [1, 2])
def test_image_shows_buffer_a_tiled_with_row_0_on_top(browser, tmp_path, zoom):
    """Image draws the grid's picture, row 0 at the top, tiled over the whole canvas at an integer zoom."""
    model = MODELS["odd"]()
    width, height = 2 * SIZE * zoom + 24, SIZE * zoom + zoom // 2  # more than the grid's 2 layers; tiles cut at the edges
    toy = Toy(browser, export(model, tmp_path), width, height)
    try:
        toy.load(textured_start(model, "odd"))
        toy.run(1)
        shown, grid = toy.image(), picture(toy.grid(model.channels))
    finally:
        toy.close()
    rows = (np.arange(height) // zoom) % SIZE  # screen row i (from the top) shows grid row (i // zoom) mod N
    columns = (np.arange(width) // zoom) % SIZE
    expected = grid[rows][:, columns]
    assert np.abs(shown - expected).max() <= 1.5 / 255, "Image does not show Buffer A's grid as laid out"
    assert grid.std() > 0.05  # a picture with structure, so that a flip or a shift would show


def test_a_canvas_too_small_for_the_grid_shows_a_plain_colour(browser, tmp_path):
    model = MODELS["odd"]()
    toy = Toy(browser, export(model, tmp_path), layers(model) * SIZE - 1, SIZE)  # one pixel too narrow
    try:
        toy.run(8)
        shown, buffer = toy.image(), toy.buffer()
    finally:
        toy.close()
    assert np.ptp(shown.reshape(-1, 3), axis=0).max() == 0 and np.abs(shown - 0.5).max() > 0.1  # one colour, not grey
    assert not buffer.any(), "Buffer A wrote something on a canvas too small for its grid"


def test_the_mouse_erases_a_disc_that_grows_back(browser, tmp_path):
    """With the model's own fire rate and coin flips: pressing erases a disc (wrapping on the torus) under the mouse as
    Image shows it, and once the button is up the texture grows back into it."""
    model = MODELS["pebbles"]()
    zoom, radius = 2, SIZE / 16
    width, height = layers(model) * SIZE, SIZE * zoom
    toy = Toy(browser, export(model, tmp_path), width, height)
    grown = rollout(model, model.empty_grid(1, SIZE), 128, torch.Generator().manual_seed(0)).detach()
    rows, columns = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    near = np.zeros((SIZE, SIZE), bool)  # cells within reach of a press so far
    try:
        toy.load(grown)
        toy.run(1)
        for column, row in [(20, 40), (1, 62)]:  # the second wraps over two edges
            x, y = column * zoom + 1, height - (row * zoom + 1)  # the mouse in pixels, from the bottom left as Shadertoy gives it
            toy.run(1, (x, y, x, y))
            state, shown = toy.grid(model.channels), toy.image()
            dy, dx = np.abs(rows - (row + 0.5)), np.abs(columns - (column + 0.5))
            distance = np.hypot(np.minimum(dx, SIZE - dx), np.minimum(dy, SIZE - dy))
            near |= distance < radius + 0.5
            erased = (state[0] == 0).all(dim=0).numpy()
            assert erased[distance < radius - 0.5].all(), "cells under the mouse were not erased"
            assert not erased[~near].any(), "cells away from the mouse were erased"
            assert np.abs(shown[height - 1 - y, x] - 0.5).max() < 1 / 255, "Image does not show the erased disc under the mouse"
        toy.run(64, (x, y, -x, -y))  # button up
        healed = toy.grid(model.channels)
    finally:
        toy.close()
    inside = distance < radius - 0.5
    assert (healed[0] != 0).any(dim=0).numpy()[inside].all(), "the erased disc did not grow back"
    spread = picture(healed)[inside].std(axis=0).mean()
    assert spread > 0.5 * picture(grown).std(axis=(0, 1)).mean(), "the disc grew back flat, not as texture"
