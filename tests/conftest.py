"""Shared fixtures: the real texture the tests train on, the tiny training run, and a randomly initialised VGG16."""

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import helpers
import pytest
import torch

from nca_gradio.images import load_target
from nca_gradio.train import Trainer

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]  # fmt: skip
MISSING = {  # marker: (what it needs is absent here, why it is skipped)
    "browser": (not CHROMIUM.exists(), "Debian chromium is not installed (apt-get install -y chromium)"),
    "gpu": (not torch.cuda.is_available(), "no CUDA GPU here"),
}


def pytest_collection_modifyitems(config, items) -> None:
    """A test marked browser or gpu is skipped where Chromium or a CUDA GPU is missing: the marker says what it needs."""
    for item in items:
        for marker, (absent, reason) in MISSING.items():
            if absent and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's headless chromium driven by Playwright (which cannot download browsers of its own here)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def set_number(page, elem_id: str, value: float) -> None:
    """Type into the number box of a slider or number field, as a user would."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


@pytest.fixture(scope="module")
def browser():
    """One browser for a test module; each test opens its own pages in it."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one thread for a test module: on a loaded 2-core machine many threads crawl (a model's load-time
    probe took 3-6 s against 0.2 s), and a browser's software WebGL needs the cores too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pebbles_path() -> Path:
    return DATA / "pebbles.png"


@pytest.fixture(scope="session")
def pebbles_64(pebbles_path) -> torch.Tensor:
    from nca_gradio.images import load_target

    return load_target(pebbles_path, 64)


@pytest.fixture(scope="session")
def tiny_config():
    """tiny_config(**changes) -> TrainConfig: the tests' one small training run (helpers.TINY)."""
    return helpers.tiny_config


@pytest.fixture(scope="session")
def tiny_flags():
    """tiny_flags(**changes) -> the same run as `nca train` flags, spelled from the same settings."""
    return helpers.tiny_flags


@pytest.fixture(scope="session")
def model(tmp_path_factory, pebbles_path, tiny_config) -> Path:
    """A tiny trained model folder with its checkpoint, trained once per run: tests copy it before they change it."""
    folder = tmp_path_factory.mktemp("model")
    target = load_target(pebbles_path, 64)
    trainer = Trainer(target, tiny_config(iters=3), log=lambda m: None)
    trainer.train()
    trainer.save(folder, target)
    return folder


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder this process cannot write in: read-only, or for root (whom permissions do not stop) a sysfs folder."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir() or _can_create(Path("/sys/kernel")):
            pytest.skip("no read-only folder for root here")
        yield Path("/sys/kernel")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def _can_create(folder: Path) -> bool:
    try:
        (folder / "nca-probe").touch()
    except OSError:
        return False
    (folder / "nca-probe").unlink()
    return True


@pytest.fixture(scope="session")
def random_vgg():
    """VGG16's feature layers with random weights: same shapes and cost as the pretrained one."""
    import timm

    torch.manual_seed(0)
    return timm.create_model("vgg16", pretrained=False, num_classes=0).features[:26]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def close_workspaces(demo) -> None:
    """Delete the folder of every session's Workspace once the server is closed.

    Gradio deletes a session's state an hour after its page closes, and demo.close() deletes none: so that a
    test run leaves no nca-studio-* folders, they go here. API sessions (gradio_client) have no page load.
    """
    from nca_gradio.ui import session_workspaces

    for workspace in session_workspaces(demo):
        workspace.close()


@contextlib.contextmanager
def launched(demo, launch_options: dict | None = None) -> Iterator[str]:
    """`demo` served on loopback; yields its URL, and on the way out closes it and deletes its sessions' folders."""
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), ssr_mode=False, quiet=True,
        **(launch_options or {}),
    )
    try:
        yield url
    finally:
        demo.close()
        close_workspaces(demo)


@pytest.fixture(scope="module")
def studio_url():
    """The whole studio, as app.py launches it, served on loopback for one test module."""
    from nca_gradio.ui import launch_options

    with running_demo(launch_options()) as url:
        yield url


@contextlib.contextmanager
def running_demo(launch_options: dict | None = None, **build_options) -> Iterator[str]:
    """The studio served on loopback; yields its URL. One torch thread: the app's tests share 2 cores."""
    from nca_gradio.ui import build_demo

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with launched(build_demo(**build_options), launch_options) as url:
            yield url
    finally:
        torch.set_num_threads(threads)
