"""Helpers the test modules share (test modules never import each other): the tiny training run, tiny model folders,
the CLI run in a process of its own or in this one.

TINY is the one small training run the tests use where its numbers do not matter; a test that needs other numbers
passes them as changes. Size 32 with a pool of 4 `fast` grids keeps training_state.safetensors above 100 kB, which the
full-disk test relies on.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save

from nca_gradio import cli
from nca_gradio.model import NCA, PERCEPTIONS, NCAConfig
from nca_gradio.model_folder import save_model
from nca_gradio.render import save_animation
from nca_gradio.train import TrainConfig
from nca_gradio.train_options import training_flags

ROOT = Path(__file__).resolve().parents[1]
TINY = {"preset": "fast", "loss": "patch", "size": 32, "target_size": 64, "batch": 2, "pool_size": 4, "steps_min": 8, "steps_max": 16,
        "device": "cpu"}


def tiny_config(**changes) -> TrainConfig:
    """The tiny run, with `changes` to its fields."""
    return TrainConfig(**{**TINY, **changes})


def tiny_flags(**changes) -> list[str]:
    """The same run as `nca train` flags (steps_min and steps_max have none: a CLI run rolls out the recipe's)."""
    tiny_config(**changes)  # a bad change fails here, as a TrainConfig, not later as a usage error
    flags = training_flags()
    spelled = []
    for name, value in {**TINY, **changes}.items():
        if name in flags and value is True:
            spelled.append(flags[name])
        elif name in flags and value is not False:
            spelled += [flags[name], str(value)]
    return spelled


def tiny_model(seed: int = 0) -> NCA:
    """A 168-parameter model with non-zero weights, as if trained."""
    torch.manual_seed(seed)
    model = NCA(NCAConfig(channels=4, hidden=8))
    torch.nn.init.normal_(model.w2.weight, std=0.05)
    return model


def model_folder(path: Path, seed: int = 0, preview: bool = True) -> Path:
    """A saved model; with a ready preview.gif (so pushing it grows nothing) and no target.png."""
    save_model(tiny_model(seed), path)
    if preview:
        frames = [np.full((16, 16, 3), 40 * i, dtype=np.uint8) for i in range(3)]
        save_animation(frames, path / "preview.gif", fps=10)
    return path


def weights_bytes(seed: int = 0) -> tuple[bytes, bytes]:
    """config.json and model.safetensors of a tiny model, as bytes for seeding a repo directly."""
    model = tiny_model(seed)
    config = {"channels": model.channels, "hidden": model.hidden, "fire_rate": model.fire_rate}
    return json.dumps(config).encode(), save(model.state_dict(), metadata={"format": "pt"})


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": "http://127.0.0.1:9", "OMP_NUM_THREADS": "1",
            "GRADIO_ANALYTICS_ENABLED": "False"}


def nca(*args, timeout: float = 120, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nca_gradio.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(), check=False, **options)


def one_line_error(result: subprocess.CompletedProcess | tuple[int, str], *words: str) -> str:
    """The run failed with status 2 and one `nca: error:` line holding every word, and no traceback."""
    code, stderr = (result.returncode, result.stderr) if isinstance(result, subprocess.CompletedProcess) else result
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("nca: error:"), stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def run_main(capsys, *args) -> tuple[int, str]:
    """The CLI in this process (quicker than a subprocess for errors raised before any training)."""
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def small_files_only() -> None:
    """In a child process: every write past 100 kB fails, as on a full disk (EFBIG instead of ENOSPC)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write instead of a killed process (ffmpeg inherits it)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def open_live_page(browser, uri: str):
    """An exported live page opened in Chromium, failing the test on any page error; the page once its player mounted."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(uri)
    page.wait_for_function("window.ncaPlayer !== undefined", timeout=30_000)
    assert not errors, errors
    return page


def open_studio(browser, url: str, viewport: dict):
    """A new page (a new session) of the studio at `url`, once its Train tab is there and the tabs have laid out."""
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    page.wait_for_selector("#nca-start", timeout=60_000)
    page.wait_for_timeout(500)  # the tabs measure themselves once the page has laid out
    return page


def offline_page(browser):
    """A page in a browser context of its own that refuses every request but file://: (context, page, refused URLs,
    page errors). Close the context when done."""
    context = browser.new_context()
    fetched: list[str] = []

    def refuse(route) -> None:
        if not route.request.url.startswith("file://"):
            fetched.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, fetched, errors


def canvas_rgb(page) -> np.ndarray:
    """What a live page's canvas shows, as an (H, W, 3) array in [0, 1]."""
    url = page.evaluate("(() => { ncaPlayer.nca.render(); return ncaPlayer.nca.canvas.toDataURL('image/png'); })()")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def turned_sobel(model: NCA, angle: float) -> NCA:
    """A copy of a Sobel model with Sobel x / y turned by `angle` (radians): what the live page's rotation runs."""
    turned = NCA(model.config)
    turned.load_state_dict(model.state_dict())
    identity, sobel_x, sobel_y, laplacian = (torch.tensor(k) for k in PERCEPTIONS["sobel"])
    c, s = math.cos(angle), math.sin(angle)
    kernels = torch.stack([identity, c * sobel_x - s * sobel_y, s * sobel_x + c * sobel_y, laplacian])
    turned.filters = kernels.repeat(model.channels, 1, 1).unsqueeze(1)
    return turned.eval()
