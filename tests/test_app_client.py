"""The studio through its HTTP API, as gradio_client sees it: train, grow, heal, Hub, errors, sessions.

One demo is launched on loopback for the module. Everything is tiny (the 4-channel
`seed` preset, 32-cell training grids, a few iterations, 64-pixel canvases) so the
module takes seconds; torch runs on one thread so two trainings share 2 cores well.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from conftest import launched, running_demo
from gradio_client import Client, handle_file
from gradio_client.client import Job
from gradio_client.exceptions import AppError
from huggingface_hub import constants
from PIL import Image

from nca_gradio.damage import damage_overlay, for_display
from nca_gradio.model_folder import load_folder
from nca_gradio.render import Damage

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_StudioLoopbackSecret0123456789"


@pytest.fixture(scope="module")
def app_url():
    with running_demo(train_concurrency=2) as url:
        yield url


def client(url: str) -> Client:
    """A new client is a new browser session, with its own gr.State."""
    return Client(url, verbose=False, download_files=True)


def start_training(session: Client, texture: Path, iterations: int = 3, isotropic: bool = False, objects: str = "off",
                   healing: bool = False, time_limit: int = 0) -> Job:
    """A /train call left running: its streamed updates are `job.outputs()`, its last one `job.result()`."""
    return session.submit(handle_file(str(texture)), "seed", "patch", iterations, 32, isotropic, objects, healing, time_limit,
                          api_name="/train")


def train(session: Client, texture: Path, **settings) -> tuple:
    return start_training(session, texture, **settings).result()


def wait_until_streaming(jobs: list[Job], updates: int) -> None:
    """Until every job has streamed `updates` updates (its run is on), or has ended, or two minutes have passed."""
    deadline = time.monotonic() + 120
    while not all(len(job.outputs()) >= updates or job.done() for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)


def models(session: Client) -> tuple[list[str], str]:
    """The session's model list and the selected model, as the page refreshes them after training or a pull."""
    grow_list, _, _ = session.predict(None, None, None, api_name="/models")
    return [value for _, value in grow_list["choices"]], grow_list["value"]


def video_frames(path: str) -> np.ndarray:
    """All frames of an MP4, decoded by ffmpeg: (N, H, W, 3)."""
    return np.stack(imageio.mimread(path, format="FFMPEG", memtest=False))


def own(labels: list[str]) -> list[str]:
    """A session's own models: the list without the bundled ones every session shares."""
    return [label for label in labels if not label.endswith("(bundled)")]


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(AppError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


@pytest.fixture(scope="module")
def trained(app_url, pebbles_path):
    """One session that trained a model; the tests below grow and damage it."""
    session = client(app_url)
    outputs = train(session, pebbles_path)
    return session, outputs, models(session)[1]


def test_training_streams_to_the_end_and_returns_a_downloadable_model(trained, tmp_path):
    session, (preview, plot, status, archive), label = trained
    with Image.open(preview) as image:
        assert image.size == (4 * 32, 32)  # four pool samples side by side
    iterations = [row[0] for row in plot["data"]]
    assert iterations == [1, 2, 3]
    assert "Finished" in status and "iteration 3 of 3" in status
    assert "texture loss " in status and " elapsed" in status  # the texture term, not the total with overflow spikes
    assert label.startswith("pebbles") and label in status
    choices, selected = models(session)
    assert selected == label and choices[-1] == label  # after any bundled models
    assert Path(archive).name == "pebbles-seed-3-it.zip"  # the label, no counter prefix
    with zipfile.ZipFile(archive) as zipped:  # what a push shares, in one folder named like the zip; never the resume state
        names = ["README.md", "config.json", "live.html", "model.safetensors", "preview.gif", "target.png", "training.json"]
        assert sorted(zipped.namelist()) == [f"pebbles-seed-3-it/{name}" for name in names]
        zipped.extractall(tmp_path)
    tmp_path = tmp_path / "pebbles-seed-3-it"
    model = load_folder(tmp_path)
    assert (model.channels, model.perception) == (4, "sobel")
    settings = json.loads((tmp_path / "training.json").read_text())
    assert (settings["iterations"], settings["config"]["preset"]) == (3, "seed")
    card = (tmp_path / "README.md").read_text()  # our card, not save_pretrained's generic one
    assert "| iterations | 3 |" in card and "--preset seed" in card and "PytorchModelHubMixin" not in card
    with Image.open(tmp_path / "preview.gif") as gif:
        assert gif.n_frames > 1


def test_the_round_shapes_box_an_objects_strength_and_healing_reach_the_model(app_url, pebbles_path, tmp_path):
    *_, status, archive = train(client(app_url), pebbles_path, iterations=1, isotropic=True, objects="light", healing=True)
    assert "pebbles · seed · round · light objects · heals · 1 it" in status
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path)
    tmp_path = tmp_path / Path(archive).stem
    assert json.loads((tmp_path / "config.json").read_text())["perception"] == "isotropic"
    settings = json.loads((tmp_path / "training.json").read_text())["config"]
    assert (settings["match_weight"], settings["damage_every"]) == (0.01, 4)
    assert load_folder(tmp_path).perception == "isotropic"


def test_training_can_start_from_a_model_of_the_session_and_keeps_its_architecture(trained, pebbles_path, tmp_path):
    session, _, label = trained  # the seed preset, sobel perception
    *_, status, archive = session.predict(handle_file(str(pebbles_path)), "fast", "patch", 1, 32, True, "off", False, 0, label,
                                          api_name="/train")  # Model size and Round shapes say otherwise: the start model decides
    assert "pebbles · seed · fine-tuned · 1 it" in status
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path)
    folder = tmp_path / Path(archive).stem
    assert json.loads((folder / "config.json").read_text()) == {"channels": 4, "hidden": 8, "fire_rate": 0.5, "perception": "sobel"}
    assert json.loads((folder / "training.json").read_text())["config"]["start_from"] == label
    card = (folder / "README.md").read_text()
    assert f"Fine-tuned from `{label}`" in card and "nca-studio-" not in card  # the name the user chose, never a server path
    assert "There is no model called 'nobody' in this session" in error_of(
        session.predict, handle_file(str(pebbles_path)), "seed", "patch", 1, 32, False, "off", False, 0, "nobody", api_name="/train")


def test_whole_objects_with_a_vgg_loss_says_which_losses_it_works_with(app_url, pebbles_path):
    with pytest.raises(AppError, match="Whole objects works with the patch loss"):
        client(app_url).predict(handle_file(str(pebbles_path)), "seed", "ot", 1, 32, False, "strong", api_name="/train")


def test_an_unknown_objects_strength_names_the_choices(app_url, pebbles_path):
    with pytest.raises(AppError, match=r"Whole objects .* must be one of 'off', 'light', 'medium', 'strong', got 'huge'"):
        client(app_url).predict(handle_file(str(pebbles_path)), "seed", "patch", 1, 32, False, "huge", api_name="/train")


def test_a_texture_upload_is_checked_at_once(app_url, pebbles_path, tmp_path):
    session = client(app_url)
    target = session.predict(handle_file(str(pebbles_path)), api_name="/load_texture")
    with Image.open(target) as image:
        assert image.size == (128, 128)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    message = error_of(session.predict, handle_file(str(broken)), api_name="/load_texture")
    assert "not an image this app can read" in message
    assert str(tmp_path) not in message  # no server paths in messages
    message = error_of(session.predict, handle_file(str(broken)), "seed", "patch", 3, 32, api_name="/train")
    assert "not an image" in message


def test_grow_returns_a_video_and_a_tiling_png_of_the_canvas_size(trained):
    session, _, label = trained
    video, final, png = session.predict(label, 64, 24, 10, 0, api_name="/grow")
    assert Path(png).name == "pebbles-seed-3-it-64px.png" and Path(video).name == "pebbles-seed-3-it-64px-growing.mp4"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (64, 64)
    assert Path(final).read_bytes() == Path(png).read_bytes()
    frames = video_frames(video)
    assert frames.shape[1:] == (64, 64, 3) and frames.shape[0] == 25  # step 0 and each of 24 steps


def test_grow_grafts_a_second_rule_and_heal_heals_the_graft(app_url, tmp_path):
    session = client(app_url)
    _, _, alone = session.predict("pebbles (bundled)", 64, 40, 10, 0, api_name="/grow")
    _, _, grafted = session.predict("pebbles (bundled)", 64, 40, 10, 0, "coffee_beans (bundled)", "vertical", None, api_name="/grow")
    assert Path(grafted).name == "pebbles-bundled-coffee_beans-bundled-graft-64px.png"
    with Image.open(alone) as a, Image.open(grafted) as g:
        a, g = np.asarray(a, np.float32), np.asarray(g, np.float32)
    left, right = (np.abs(a - g)[:, cols].mean() for cols in (slice(8, 24), slice(40, 56)))
    assert right > 4 * left, (left, right)  # the right half runs the coffee beans' rule, the left still the pebbles'
    video, _, note = session.predict("circle", 0.25, 0.75, 0.5, 20, 10, api_name="/heal")
    assert "grafted with coffee_beans (bundled)" in note and video_frames(video).shape[1:] == (64, 64, 3)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))).save(mask)
    _, _, blended = session.predict("pebbles (bundled)", 64, 10, 10, 0, "coffee_beans (bundled)", "mask", handle_file(str(mask)), api_name="/grow")
    assert Path(blended).exists()
    assert "Upload a mask image" in error_of(session.predict, "pebbles (bundled)", 64, 10, 10, 0, "coffee_beans (bundled)", "mask", None, api_name="/grow")
    assert "must be one of" in error_of(session.predict, "pebbles (bundled)", 64, 10, 10, 0, "nobody (bundled)", "vertical", None, api_name="/grow")


def test_heal_mends_the_grown_texture_and_plots_the_curve(trained):
    session, _, label = trained
    _, final, _ = session.predict(label, 64, 24, 10, 0, api_name="/grow")
    x, y, overlay = session.predict("square", 0.2, api_name="/random_damage")
    with Image.open(overlay) as image, Image.open(final) as grown:
        assert image.size == (6 * 64, 6 * 64)  # a small canvas is shown zoomed by whole pixels
        shown = np.asarray(image.convert("RGB"))
        expected = for_display(damage_overlay(np.asarray(grown.convert("RGB")), Damage("square", x, y, 0.2)))
    assert np.array_equal(shown, expected)  # the square is tinted where the returned x and y say
    video, curve, note = session.predict("circle", 0.25, 0.3, 0.6, 20, 10, api_name="/heal")
    frames = video_frames(video)
    assert frames.shape[1:] == (64, 64, 3) and frames.shape[0] == 1 + 4 + 20  # intact, 4 lead steps, 20 healing
    damaged = [(row[0], row[1]) for row in curve["data"] if row[2] == "damaged"]
    twin = [(row[0], row[1]) for row in curve["data"] if row[2].startswith("undamaged")]
    steps, losses = zip(*damaged)
    assert steps[0] == 24 and steps[-1] == 48 and losses[0] == pytest.approx(0.0, abs=1e-6)  # counted from the start of growth
    assert max(losses) > 0.0
    assert [step for step, _ in twin] == list(steps) and twin[0][1] == pytest.approx(0.0, abs=1e-6)  # the level healed returns to
    assert "circle" in note and "at step 29 (grown 24 steps, then 4 more)" in note
    assert "healed:" not in note and "cannot be judged" in note  # a 3-iteration model learned no texture to heal


def test_out_of_range_requests_say_what_to_fix(trained, app_url):
    session, _, label = trained
    assert "Canvas (pixels a side) must be a whole number from 32 to 1024, got 2048" in error_of(session.predict, label, 2048, 24, 10, 0, api_name="/grow")
    assert "Steps must be a whole number from 10 to 4000, got 100000" in error_of(session.predict, label, 64, 100_000, 10, 0, api_name="/grow")
    if not torch.cuda.is_available():  # a GPU has a larger budget, and this request fits it
        message = error_of(session.predict, label, 1024, 1000, 10, 0, api_name="/grow")
        assert "too much work on this CPU: use at most 32 steps at this size" in message
    assert "Iterations must be a whole number from 1 to 5000, got 0" in error_of(session.predict, handle_file(str(ROOT / "examples" / "pebbles.png")), "seed", "patch", 0, 32, api_name="/train")
    fresh = client(app_url)
    assert "Grow a texture in the Grow tab first" in error_of(fresh.predict, "circle", 0.2, 0.5, 0.5, 10, 10, api_name="/heal")
    assert "Choose a model first" in error_of(fresh.predict, None, 64, 24, 10, 0, api_name="/grow")
    assert "Upload a texture image" in error_of(fresh.predict, None, "seed", "patch", 3, 32, api_name="/train")


def test_two_sessions_training_at_once_do_not_see_each_others_models(app_url, pebbles_path):
    alice, bob = client(app_url), client(app_url)
    jobs = [alice.submit(handle_file(str(pebbles_path)), "seed", "patch", 3, 32, api_name="/train"),
            bob.submit(handle_file(str(ROOT / "examples" / "coffee_beans.png")), "seed", "patch", 3, 32, api_name="/train")]
    for job in jobs:
        job.result(timeout=300)
    (alice_models, alice_label), (bob_models, bob_label) = models(alice), models(bob)
    assert alice_label.startswith("pebbles") and own(alice_models) == [alice_label]
    assert bob_label.startswith("coffee_beans") and own(bob_models) == [bob_label]
    assert "Model must be one of" in error_of(alice.predict, bob_label, 64, 10, 10, 0, api_name="/grow")
    assert "Model must be one of" in error_of(bob.predict, alice_label, 64, 10, 10, 0, api_name="/grow")
    assert Path(alice.predict(alice_label, 64, 10, 10, 0, api_name="/grow")[2]).exists()


@pytest.fixture
def loopback_hub(tmp_path, monkeypatch):
    """A loopback Hub; the app (same process) reads HF_ENDPOINT and HF_HOME when it pulls or pushes."""
    from hub_server import LoopbackHub

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    with LoopbackHub(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
    assert not hub.unknown


def test_share_then_get_a_model_through_the_hub_tab(trained, app_url, loopback_hub):
    session, _, label = trained
    assert "write token" in error_of(session.predict, label, "alice/studio-pebbles", False, "", api_name="/push")
    shared = session.predict(label, "alice/studio-pebbles", False, TOKEN, api_name="/push")
    assert "alice/studio-pebbles" in shared and TOKEN not in shared
    assert {"config.json", "model.safetensors", "README.md", "preview.gif"} <= set(loopback_hub.files("alice/studio-pebbles"))

    other = client(app_url)
    card, preview, note = other.predict("alice/studio-pebbles", "", "", api_name="/pull")
    choices, selected = models(other)
    assert own(choices) == [selected] == ["alice/studio-pebbles (Hub)"] and "alice/studio-pebbles" in note
    assert "Neural Cellular Automaton" in card and "---" not in card.splitlines()[0] and TOKEN not in card
    assert preview["visible"] and Path(preview["value"]).name == "preview.gif"
    with Image.open(preview["value"]) as image:
        assert image.n_frames > 1  # the card's animated preview, shown beside it
    _, _, png, *_ = other.predict("alice/studio-pebbles (Hub)", 64, 10, 10, 0, api_name="/grow")
    with Image.open(png) as image:
        assert image.size == (64, 64)
    assert "was not found" in error_of(other.predict, "alice/no-such-model", "", "", api_name="/pull")


def test_the_tabs_mount_inside_another_app():
    import gradio as gr

    from nca_gradio.ui import render_tabs

    with gr.Blocks() as host:
        gr.Markdown("# A creative-coding toolkit")
        with gr.Tab("Textures"):
            tabs = render_tabs()
        with gr.Tab("Something else"):
            gr.Textbox()
    names = {fn.api_name for fn in host.fns.values()}
    assert {"train", "models", "grow", "heal", "random_damage", "pull", "push"} <= names
    assert isinstance(tabs.workspace, gr.State) and tabs.grow_model in host.blocks.values()


def test_api_values_are_checked_when_the_tabs_are_mounted_in_a_plain_blocks(pebbles_path):
    """A host's gr.Blocks runs the studio's field checks for the studio's events, and leaves its own events to Gradio."""
    import gradio as gr

    from nca_gradio.ui import render_tabs

    with gr.Blocks() as host:
        gr.Markdown("# A creative-coding toolkit")
        with gr.Tab("Textures"):
            render_tabs()
        with gr.Tab("Echo"):
            words, echoed = gr.Textbox(), gr.Textbox()
            words.submit(lambda text: text, words, echoed, api_name="echo")
    with launched(host) as url:  # nothing is computed: every call is refused, or echoed
        session = client(url)
        assert "Canvas (pixels a side) must be a whole number from 32 to 1024, got 'abc'" in error_of(
            session.predict, "pebbles (bundled)", "abc", 24, 10, 0, api_name="/grow")
        message = error_of(session.predict, handle_file(str(pebbles_path)), "seed", "patch", 3, 256, api_name="/train")
        assert "Training size (cells) must be a whole number from 16 to 128, got 256" in message and "\n" not in message.strip()
        assert session.predict("hello", api_name="/echo") == "hello"


def test_a_time_limit_ends_training_on_time_with_a_finished_model(app_url, pebbles_path):
    session = client(app_url)
    _, _, status, archive = train(session, pebbles_path, iterations=5000, time_limit=2)
    assert "Finished" in status and archive is not None
    done = int(re.search(r"iteration (\d+)", status).group(1))
    assert 0 < done < 5000  # the run ended on time, far short of its 5000 iterations
    # it counts the time limit once it has measured its speed; a limit spent before that ends the plan where it got
    assert "of the 2 s time limit" in status or f"iteration {done} of {done}" in status, status


def test_stop_training_through_the_api_ends_the_run_and_keeps_its_model(app_url, pebbles_path):
    """An API client stops its own run as the page's Stop does: the run ends early and its model is the session's."""
    session = client(app_url)
    job = start_training(session, pebbles_path, iterations=5000)
    wait_until_streaming([job], 3)
    session.predict(api_name="/stop_training")
    _, _, status, archive = job.result(timeout=120)
    done = int(re.search(r"iteration (\d+)", status).group(1))
    assert "Stopped" in status and 0 < done < 5000, status
    assert archive is not None and models(session)[1] in status  # the stopped run's model is kept, and listed


def test_a_training_waiting_in_the_queue_is_dropped_by_cancelling_its_job(app_url, pebbles_path):
    """/stop_training stops a run that is on; one still waiting its turn is the client's to drop (`job.cancel()`, the
    README says so): with both training slots busy, a third session's run is cancelled and the next slot goes past it."""
    busy = [client(app_url) for _ in range(2)]
    running = [start_training(session, pebbles_path, iterations=5000) for session in busy]
    wait_until_streaming(running, 2)
    waiting = start_training(client(app_url), pebbles_path, iterations=5000)
    time.sleep(1)
    waiting.cancel()  # still in the queue: gradio_client takes it out
    short = start_training(client(app_url), pebbles_path, iterations=3)
    busy[0].predict(api_name="/stop_training")
    assert "Stopped" in running[0].result(timeout=120)[2]
    # the freed slot goes to the run queued after the cancelled one: a cancelled run still queued would take it and
    # hold it until the other busy run ends, which nobody asks for until this one has finished
    assert "Finished" in short.result(timeout=120)[2]
    assert not running[1].done()
    busy[1].predict(api_name="/stop_training")
    assert "Stopped" in running[1].result(timeout=120)[2]


def test_an_api_session_left_idle_has_its_files_deleted_while_the_server_runs(monkeypatch):
    """gradio_client sessions have no page whose closing deletes them: an idle sweep does (NCA_WORKSPACE_IDLE_SECONDS)."""
    from nca_gradio.ui import build_demo, session_workspaces

    monkeypatch.setenv("NCA_WORKSPACE_IDLE_SECONDS", "2")
    demo = build_demo()
    with launched(demo) as url:
        _, _, png = client(url).predict("pebbles (bundled)", 32, 10, 10, 0, api_name="/grow")
        folders = [w.root for w in session_workspaces(demo) if w.root is not None]
        assert len(folders) == 1 and folders[0].is_dir() and Path(png).exists()
        deadline = time.monotonic() + 30
        while folders[0].exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not folders[0].exists()  # deleted while the server still runs, not at its close
        assert all(w.root is None and not w.models for w in session_workspaces(demo))
