"""A Hub that lies, loops, floods or stalls: the real huggingface_hub client against `hostile_hub` on loopback.

Each test is one finding of the probe (issue 32): what a hostile or broken Hub could do to
`nca search`, the studio's gallery, a preview cache or a push. Nothing of ours is mocked.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
from hostile_hub import COMMIT, HostileHub, SilentHub, entry
from huggingface_hub import constants

from nca_gradio import gallery
from nca_gradio.cli import main
from nca_gradio.hub import HubError, pull, push
from nca_gradio.ui import Handlers, friendly
from nca_gradio.ui_checks import user_error

TOKEN = "hf_HostileTestToken0123456789abcd"
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # what a terminal must not get (tab, newline allowed)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """No token, cache or endpoint of the machine's; previews kept two folders down in tmp_path."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_ENDPOINT", "NCA_HUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    cache = tmp_path / "cache" / "previews"
    monkeypatch.setattr(gallery, "_preview_dir", cache)
    gallery._previews.clear()
    return cache


def shared(repo_id: str, sha: str | None = COMMIT) -> gallery.SharedModel:
    return gallery.SharedModel(repo_id, "eve", 0, 0, None, None, None, sha)


def bounded(call, limit: float):
    """`call()`'s result, failing the test (not hanging it) if it has not returned after `limit` seconds."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:  # noqa: BLE001 (raised again in the test's thread)
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still running after {limit} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# ------------------------------------------------------------------ 1: path traversal


def test_a_sha_that_climbs_out_of_the_cache_never_writes_outside_it(tmp_path, isolated):
    victim = tmp_path / "victim" / "preview.gif"
    victim.parent.mkdir()
    victim.write_bytes(b"the server's own file")
    climbing = "../../../victim/preview"  # previews/eve--x/ + this + ".gif" is the victim
    with HostileHub([[entry("eve/x", sha=climbing)]]) as hub:
        hub.stream_bytes = 100  # as much as its HEAD says: a preview that would be written
        assert gallery.preview(shared("eve/x", climbing), endpoint=hub.url) is None
        assert not [r for r in hub.requests if "/resolve/" in r]  # refused before asking
        found = gallery.find(endpoint=hub.url)
    assert victim.read_bytes() == b"the server's own file"
    assert found.models == [] and found.skipped == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "hf_home" not in p.parts]
    assert written == [victim]


@pytest.mark.parametrize("sha", ["main", "0" * 39, "0" * 40 + "/..", "A" * 40, "/etc/passwd"])
def test_only_a_full_commit_hash_names_a_preview_file(sha, isolated):
    with pytest.raises(HubError):
        gallery.preview_path(shared("eve/x", sha))
    assert gallery.preview_path(shared("eve/x")) == isolated.resolve() / "eve--x" / f"{COMMIT}.gif"


# ------------------------------------------------------------------ 2: previews read to the cap, not whole


BUFFERED = 2 * 2**20  # what the loopback connection itself may hold (sent, never read): about 0.3 MB measured on Linux


def test_a_preview_larger_than_its_head_said_is_read_only_to_the_cap(isolated):
    cap = 100_000
    with HostileHub([[entry("eve/big")]]) as hub:
        model = gallery.search(endpoint=hub.url)[0]
        assert gallery.preview(model, endpoint=hub.url, max_bytes=cap) is None
        time.sleep(0.5)  # the server notices the closed connection
        sent = hub.sent
    assert sent <= cap + BUFFERED, f"{sent / 2**20:.1f} MB read of a preview capped at {cap} bytes"
    assert sent < hub.stream_bytes / 2
    assert not isolated.exists() or not any(isolated.rglob("*.gif"))


# ------------------------------------------------------------------ 3: listings that never end


def test_a_self_linking_empty_page_ends_the_listing(isolated, monkeypatch, capsys):
    with HostileHub([[]], lifetime=20) as hub:
        hub.self_link = True
        assert bounded(lambda: gallery.search(endpoint=hub.url), 15) == []
        assert len(hub.requests) == 2  # one page from each listing (tag, library), each seen linking to itself
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert bounded(lambda: main(["search"]), 15) == 0
    assert "no shared NCA models found" in capsys.readouterr().err


def test_an_endless_chain_of_pages_stops_at_the_page_cap(isolated):
    with HostileHub([[]], lifetime=20) as hub:
        hub.endless = True
        assert bounded(lambda: gallery.search(endpoint=hub.url), 15) == []
        assert len(hub.requests) == 2 * gallery.MAX_PAGES


# ------------------------------------------------------------------ 4: one bad entry costs one card


BAD_ENTRIES = [entry("a/lots", downloads="lots"), entry("a/list", likes=[1]), entry("noslash"), entry("a/../b"),
               entry(42), "not an entry", entry("a/neg", downloads=-5), entry("a/bool", likes=True)]


def test_bad_entries_are_skipped_and_counted_in_search_and_cli(isolated, monkeypatch, capsys):
    with HostileHub([[entry("good/one", downloads=7, author=None), *BAD_ENTRIES]]) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["search"]) == 0
        found = gallery.find(endpoint=hub.url)
    assert [(m.repo_id, m.author, m.downloads) for m in found.models] == [("good/one", "good", 7)]
    assert found.skipped == len(BAD_ENTRIES)
    out, err = capsys.readouterr()
    assert out.splitlines()[1].split()[0] == "good/one"
    assert err == f"nca: {len(BAD_ENTRIES)} Hub listing entries skipped: not valid models.\n"


def test_the_studio_gallery_shows_the_good_models_and_the_skipped_count(isolated, monkeypatch, tmp_path):
    with HostileHub([[entry("good/one"), *BAD_ENTRIES]]) as hub:
        hub.stream_bytes = 100
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        *_, (pictures, ids, note, _) = list(Handlers(tmp_path, []).browse("", "most liked", 1))
    assert ids == ["good/one"] and len(pictures) == 1
    assert note == f"1 shared model; click one to get it. {len(BAD_ENTRIES)} Hub listing entries skipped: not valid models."


@pytest.mark.parametrize("repo_id", ["noslash", "a/../b", "", "a/b/c"])
def test_a_preview_of_an_invalid_id_is_none_not_an_exception(repo_id, isolated):
    with HostileHub() as hub:
        assert gallery.preview(shared(repo_id), endpoint=hub.url) is None
        assert hub.requests == []


# ------------------------------------------------------------------ 5: terminal control codes


FORGED_AUTHOR = "\x1b]0;pwned\x07\x1b[2J\x1b[1A\r\nfake/model  99,999\u202eevil\x9b2J\x08"


def test_terminal_escapes_from_the_hub_never_reach_the_terminal(isolated, monkeypatch, capsys):
    with HostileHub([[entry("eve/x", author=FORGED_AUTHOR)]]) as hub:
        found = gallery.search(endpoint=hub.url)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["search"]) == 0
    out = capsys.readouterr().out
    for text in (gallery.table(found), out, found[0].caption()):
        assert not UNSAFE.search(text.replace("\n", "")), repr(text)
    assert len(out.splitlines()) == 2  # the header and the one model: no forged line
    assert "pwned" not in out and "fake/model  99,999evil" in out  # the text stays, its control codes go


# ------------------------------------------------------------------ 6: push times out


@pytest.mark.slow
def test_push_against_a_hub_that_never_answers_fails_in_bounded_time_with_one_line(isolated, tmp_path, monkeypatch, capsys):
    from helpers import model_folder

    folder = model_folder(tmp_path / "m")
    with SilentHub(lifetime=45) as silent:  # it closes its connections after 45 s: a hung push would then end
        monkeypatch.setenv("HF_ENDPOINT", silent.url)
        monkeypatch.setenv("NCA_HUB_TIMEOUT", "2")
        assert bounded(lambda: main(["push", str(folder), "alice/x", "--token", TOKEN]), 30) == 2  # 2 s and the card's making
        assert silent.accepted >= 1  # it was the Hub's silence, not a refused connection
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the Hub did not answer in 2 s" in err and TOKEN not in err, err


@pytest.mark.slow
def test_the_studios_share_path_times_out_too(isolated, tmp_path, monkeypatch):
    from helpers import model_folder

    folder = model_folder(tmp_path / "m")
    with SilentHub(lifetime=45) as silent:
        monkeypatch.setenv("NCA_HUB_TIMEOUT", "1")  # the studio's Share passes no timeout: the environment's holds
        share = friendly(push)  # as the studio wraps its Share handler: one quiet gr.Error
        with pytest.raises(gr.Error) as caught:
            bounded(lambda: share(folder, "alice/x", token=TOKEN, endpoint=silent.url), 30)
    assert "the Hub did not answer in 1 s" in caught.value.message and "\n" not in caught.value.message


# ------------------------------------------------------------------ 13: HTML in the studio's pop-ups


def test_error_popups_escape_html_from_typed_ids_and_hub_file_names(isolated):
    assert user_error("'<img src=x onerror=alert(1)>' is not a repo id").message == (
        "'&lt;img src=x onerror=alert(1)&gt;' is not a repo id")
    with HostileHub() as hub:
        hub.siblings = [{"rfilename": '<img src="http://127.0.0.1:9/beacon">.pkl', "size": 10}]
        with pytest.raises(gr.Error) as caught:
            friendly(pull)("eve/x", endpoint=hub.url)  # the studio's Get model path
    message = caught.value.message
    assert "only pickle weights" in message and "<img" not in message and "&lt;img" in message
