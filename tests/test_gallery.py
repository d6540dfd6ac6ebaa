"""The gallery and `nca search`: the real huggingface_hub client lists models on the loopback Hub."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHOTS, chromium, running_demo
from helpers import weights_bytes
from hub_server import LoopbackHub
from huggingface_hub import constants
from PIL import Image

from nca_gradio import gallery
from nca_gradio.card import card_metadata
from nca_gradio.hub import HubError, push

TOKEN = "hf_LoopbackSecretToken0123456789"
BUNDLED = sorted((Path(__file__).resolve().parents[1] / "models").glob("*/preview.gif"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No token and no cache of the machine's: the gallery must work anonymously."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE"):  # HF_ENDPOINT: the studio fixture points it here
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(gallery, "_preview_dir", tmp_path / "previews")
    gallery._previews.clear()


def gif(shade: int) -> bytes:
    buffer = io.BytesIO()
    frames = [Image.fromarray(np.full((8, 8, 3), (shade + 20 * i) % 256, dtype=np.uint8)) for i in range(2)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def card(score: float | None = None, tagged: bool = True) -> bytes:
    """A card's front matter as our pushes write it; `tagged=False` is an older push that named only the library."""
    yaml = card_metadata(score).to_yaml()
    if not tagged:
        yaml = "library_name: nca-gradio\nlicense: mit"
    return f"---\n{yaml}\n---\n\n# model\n".encode()


@pytest.fixture(scope="module")
def hub():
    """30 shared models with known downloads and likes, one older untagged push, one private, one not an NCA."""
    with LoopbackHub(token=TOKEN) as server:
        for i in range(30):
            repo = f"user{i % 3}/texture-{i:02d}"
            config, weights = weights_bytes(i)
            picture = BUNDLED[i].read_bytes() if i < len(BUNDLED) else gif(i * 8)  # real previews first, for the screenshot
            server.seed(repo, {"README.md": card(score=round(0.5 + i / 100, 2)), "preview.gif": picture, "config.json": config,
                               "model.safetensors": weights})
            server.repos[repo].downloads, server.repos[repo].likes = 1000 - i * 10, i
        config, weights = weights_bytes(99)
        server.seed("old/untagged-bricks", {"README.md": card(tagged=False), "preview.gif": gif(3), "config.json": config,
                                            "model.safetensors": weights})
        server.repos["old/untagged-bricks"].downloads = 5000
        server.seed("alice/secret-texture", {"README.md": card(0.9)}, private=True)
        server.seed("bert/a-language-model", {"README.md": b"---\nlibrary_name: transformers\ntags:\n- text\n---\n"})
        yield server
        assert not server.unknown, server.unknown


def test_lists_our_models_best_first_including_older_untagged_pushes(hub):
    found = gallery.search(sort="downloads", limit=5, endpoint=hub.url)
    assert [m.repo_id for m in found] == ["old/untagged-bricks", "user0/texture-00", "user1/texture-01", "user2/texture-02",
                                          "user0/texture-03"]
    assert found[1].author == "user0" and found[1].downloads == 1000 and found[1].score == pytest.approx(0.5)
    assert found[0].score is None  # an older card without figures
    everything = {m.repo_id for m in gallery.search(limit=100, endpoint=hub.url)}
    assert len(everything) == 31 and "alice/secret-texture" not in everything and "bert/a-language-model" not in everything


def test_search_text_filters_and_the_sorts_order(hub):
    assert [m.repo_id for m in gallery.search("TEXTURE-1", sort="likes", limit=3, endpoint=hub.url)] == [
        "user1/texture-19", "user0/texture-18", "user2/texture-17"]
    recent = gallery.search(sort="recent", limit=2, endpoint=hub.url)
    assert recent[0].created >= recent[1].created
    assert gallery.search("no-such-thing", endpoint=hub.url) == []


def test_pages_come_in_steps_and_never_fetch_everything(hub):
    hub.page_size = 4
    try:
        before = len(hub.requests)
        first = gallery.search(limit=4, endpoint=hub.url)
        listing_calls = [r for r in hub.requests[before:] if r == "GET /api/models"]
        assert len(listing_calls) == 2  # one page from each of the two listings (tag, library), not all eight
        second = gallery.search(limit=4, offset=4, endpoint=hub.url)
    finally:
        hub.page_size = 1000
    assert not {m.repo_id for m in first} & {m.repo_id for m in second}
    assert [m.repo_id for m in first + second] == [m.repo_id for m in gallery.search(limit=8, endpoint=hub.url)]


def test_previews_are_fetched_size_capped_and_cached(hub):
    models = gallery.search(limit=3, endpoint=hub.url)
    paths = gallery.previews(models, endpoint=hub.url)
    assert all(p is not None and p.read_bytes()[:4] == b"GIF8" for p in paths)
    before = len(hub.requests)
    assert gallery.previews(models, endpoint=hub.url) == paths and len(hub.requests) == before  # cached: no request
    big = gallery.search("texture-29", endpoint=hub.url)[0]
    before = len(hub.requests)
    assert gallery.preview(big, endpoint=hub.url, max_bytes=10) is None
    asked = [r.split()[0] for r in hub.requests[before:] if r.endswith("/preview.gif")]
    assert asked == ["HEAD"]  # its size was asked for, the file itself never downloaded


def test_an_unreachable_hub_is_one_line():
    with pytest.raises(HubError, match="cannot reach http://127.0.0.1:9: the gallery needs the Hub") as info:
        gallery.search(endpoint="http://127.0.0.1:9", timeout=2)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_a_pushed_card_carries_the_tag_the_library_the_preview_and_its_score(tmp_path, pebbles_path, tiny_config):
    from nca_gradio.images import load_target
    from nca_gradio.train import Trainer

    config = tiny_config(iters=2)
    target = load_target(pebbles_path, config.target_size)
    trainer = Trainer(target, config, log=lambda message: None)
    trainer.train(None)
    trainer.save(tmp_path / "mine", target)
    with LoopbackHub(token=TOKEN) as server:
        push(tmp_path / "mine", "carol/mine", token=TOKEN, endpoint=server.url, log=lambda message: None)
        found = gallery.search("mine", endpoint=server.url)
        assert [m.repo_id for m in found] == ["carol/mine"] and found[0].score is not None and found[0].score > 0
        assert {"preview.gif", "target.png"} <= set(server.files("carol/mine"))
        assert gallery.preview(found[0], endpoint=server.url) is not None


def nca_search(*args: str, endpoint: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "HF_ENDPOINT": endpoint}
    return subprocess.run([sys.executable, "-m", "nca_gradio.cli", "search", *args], capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.mark.slow
def test_nca_search_prints_a_table_of_ids_that_pull_takes(hub, tmp_path):
    result = nca_search("texture-2", "--sort", "likes", "--limit", "3", endpoint=hub.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["repo", "id", "author", "downloads", "likes", "last", "modified", "score"]
    assert [line.split()[0] for line in lines[1:]] == ["user2/texture-29", "user1/texture-28", "user0/texture-27"]
    assert lines[1].split()[-1] == "0.79"
    down = nca_search(endpoint="http://127.0.0.1:9")
    assert down.returncode == 2 and down.stderr.count("\n") == 1 and "cannot reach" in down.stderr


# ------------------------------------------------------------------ the studio's gallery


@pytest.fixture(scope="module")
def studio_url(hub, tmp_path_factory):
    """The studio, reading the loopback Hub (HF_ENDPOINT is read when a request is made) with no token of its own."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("studio_hf_home")
        patch.setenv("HF_HOME", str(home))
        patch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
        patch.setenv("HF_ENDPOINT", hub.url)
        with running_demo() as url:
            yield url


@pytest.mark.slow  # launches the studio
def test_the_studio_gallery_lists_pages_with_previews_and_says_when_the_hub_is_down(hub, studio_url):
    from gradio_client import Client

    client = Client(studio_url, verbose=False)
    pictures, note = client.predict("", "most liked", api_name="/browse")
    assert len(pictures) == gallery.PAGE_SIZE and "12 shared models" in note, note
    assert pictures[0]["caption"].startswith("texture-29 by user2") and "score 0.79" in pictures[0]["caption"]
    with Image.open(pictures[0]["image"]) as image:
        assert image.format == "GIF"
    found, note = client.predict("texture-07", "newest", api_name="/browse")
    assert [p["caption"].split()[0] for p in found] == ["texture-07"] and note.startswith("1 shared model;")
    hub.down = True
    try:
        pictures, note = client.predict("", "most downloaded", api_name="/browse")
    finally:
        hub.down = False
    assert pictures == [] and note.startswith("The gallery is unavailable") and "\n" not in note
    _, _, png, *_ = client.predict("pebbles (bundled)", 64, 10, 10, 0, api_name="/grow")  # the rest of the studio works
    assert Path(png).exists()


@pytest.mark.browser
def test_one_click_in_the_gallery_pulls_the_model_and_opens_it_in_grow(hub, studio_url):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(studio_url)
        page.wait_for_selector("#nca-start", timeout=60_000)
        page.get_by_role("tab", name="5 · Hub").click()
        items = page.locator("#nca-gallery button img")
        items.nth(gallery.PAGE_SIZE - 1).wait_for(state="visible", timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#nca-gallery button img')].every(i => i.src.endsWith('.gif'))",
            timeout=30_000)
        assert page.locator("#nca-gallery").inner_text().count("downloads") == gallery.PAGE_SIZE
        page.locator("#nca-gallery-box").screenshot(path=str(SHOTS / "gallery.png"))
        page.locator("#nca-gallery-more").click()  # the next page joins the first
        items.nth(2 * gallery.PAGE_SIZE - 1).wait_for(state="visible", timeout=30_000)
        items.first.click()
        page.get_by_role("tab", name="2 · Grow", selected=True).wait_for(timeout=60_000)
        assert page.locator("#nca-grow-model input").input_value() == "old/untagged-bricks (Hub)"
