"""Getting a model from the Hub in a real browser, with the Hugging Face cache where it is by default.

On a Space, and on most machines, the cache is ~/.cache/huggingface: outside both the app's
working directory and the system's temp directory, the two places Gradio serves files from.
So the studio is started as `python app.py` would start it, in its own process, with HOME,
TMPDIR and the working directory three separate folders and no HF_HOME or HF_HUB_CACHE.
A model pushed to a loopback Hub is then pulled through the page and must show its card and
preview and join the model lists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, SHOTS, chromium, free_port
from hub_server import LoopbackHub

TOKEN = "hf_BrowserLoopbackSecret012345678"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def places():
    """HOME, TMPDIR and the working directory: three folders, none inside another, none in the system's temp dir."""
    (ROOT / "build").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="default-cache-", dir=ROOT / "build"))
    folders = {name: base / name for name in ("home", "tmp", "cwd")}
    for folder in folders.values():
        folder.mkdir()
    yield folders
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from helpers import model_folder

    from nca_gradio.hub import push

    with LoopbackHub(token=TOKEN) as server:
        push(model_folder(tmp_path_factory.mktemp("m") / "m"), "alice/browser-model", token=TOKEN, endpoint=server.url, log=lambda m: None)
        yield server


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def app(places, hub):
    """`python app.py` with the default cache location: $HOME/.cache/huggingface."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "GRADIO_"))}
    env.update(
        HOME=str(places["home"]), TMPDIR=str(places["tmp"]), PYTHONPATH=str(ROOT), HF_ENDPOINT=hub.url,
        GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1",
    )
    log = places["home"] / "app.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=places["cwd"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", process)
        yield {"url": f"http://127.0.0.1:{port}/", "log": log}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_pulled_model_shows_its_card_and_joins_the_lists_with_the_cache_in_home(app, places):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app["url"])
        page.get_by_role("tab", name=re.compile("Hub")).click()
        page.locator("#nca-pull-repo").get_by_role("textbox").fill("alice/browser-model")
        page.locator("#nca-pull").click()
        page.locator("#nca-pull-note").get_by_text("Got alice/browser-model (Hub)").wait_for(timeout=60_000)
        page.locator("#nca-card-preview img").wait_for(timeout=30_000)
        assert "Neural Cellular Automaton" in page.locator("#nca-card").inner_text()
        page.screenshot(path=str(SHOTS / "hub-pull-default-cache.png"), full_page=True)
        page.get_by_role("tab", name=re.compile("Grow")).click()
        assert page.locator("#nca-grow-model input").input_value() == "alice/browser-model (Hub)"
    log = app["log"].read_text(errors="replace")
    assert "InvalidPathError" not in log and "Traceback" not in log, log[-2000:]
