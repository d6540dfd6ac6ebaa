"""`nca train-many` on a real local Ray cluster: tiny trainings, a corrupt image, a killed worker, a rerun.

One Ray instance (2 CPUs) serves the whole module: starting Ray takes 10-15 s on two busy cores.
"""

import csv
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageOps

pytest.importorskip("ray", reason='the scale extra: pip install -e ".[scale]"')

from helpers import TINY
from hub_server import LoopbackHub

from nca_gradio import cli
from nca_gradio.scale import TASK_PREFIX, ScaleError, Texture, find_textures, ray_session, train_many, trained_iterations
from nca_gradio.train import TrainConfig

pytestmark = pytest.mark.slow  # a Ray cluster and its trainings

TOKEN = "hf_LoopbackSecretToken0123456789"


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray of 2 CPUs, started the way train_many starts one; train_many then uses it as found."""
    with ray_session(None, num_cpus=2) as ray:
        yield ray


@pytest.fixture
def textures(tmp_path, pebbles_path) -> Path:
    """Two real textures and a PNG cut off after 300 bytes."""
    folder = tmp_path / "textures"
    folder.mkdir()
    shutil.copy(pebbles_path, folder / "pebbles.png")
    ImageOps.mirror(Image.open(pebbles_path).rotate(90)).save(folder / "turned.png")
    (folder / "broken.png").write_bytes(Path(pebbles_path).read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image: left alone")
    return folder


def rows(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def test_without_ray_it_says_in_one_line_how_to_install_it(monkeypatch, capsys, textures, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as where the extra is missing
    assert cli.main(["train-many", str(textures), "-o", str(tmp_path / "zoo")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[scale]"' in err


def test_two_images_that_would_share_a_folder_are_refused_before_training(tmp_path, pebbles_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(pebbles_path, tmp_path / sub / "stones.png")
    with pytest.raises(ScaleError, match="would both train into stones/: rename one"):
        find_textures([tmp_path / "a", tmp_path / "b"])


def test_good_textures_finish_the_corrupt_one_is_reported_and_a_rerun_skips_what_is_done(
    ray_local, textures, tmp_path, monkeypatch, capsys, tiny_flags
):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "zoo"
    with LoopbackHub(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code = cli.main(["train-many", str(textures), "-o", str(out), "--iters", "4", *tiny_flags(), "--push-to", "alice"])
        pushed = {repo: hub.files(repo) for repo in ("alice/pebbles", "alice/turned")}
        assert "alice/broken" not in hub.repos
    assert code == 1  # one texture failed
    err = capsys.readouterr().err
    assert "nca: broken: failed: the image data is corrupt or truncated" in err

    first = rows(out)
    assert set(first) == {"broken", "pebbles", "turned"}  # notes.txt is not an image
    for name in ("pebbles", "turned"):
        assert first[name]["status"] == "done" and first[name]["iterations"] == "4"
        assert float(first[name]["score"]) > 0 and float(first[name]["seconds"]) > 0
        assert first[name]["hub"].endswith(f"alice/{name}")
        card = (out / name / "README.md").read_text()
        assert "| iterations | 4 |" in card and "--preset fast" in card  # the card of `nca train`, with this run's recipe
        assert pushed[f"alice/{name}"]["README.md"].decode().startswith("---")
        assert {"config.json", "model.safetensors", "preview.gif"} <= set(pushed[f"alice/{name}"])
    broken = first["broken"]["status"]
    assert broken.startswith("failed: the image data is corrupt or truncated") and "\n" not in broken
    assert "Traceback" not in broken
    assert "| broken |  |  |  |  | failed: the image data is corrupt" in (out / "summary.md").read_text()

    weights = {name: (out / name / "model.safetensors").stat().st_mtime_ns for name in ("pebbles", "turned")}
    own_recipe = Texture("short", str(textures / "pebbles.png"), TrainConfig(**{**TINY, "iters": 2}))  # as models/build.py has
    again = {o.name: o for o in train_many([textures, own_recipe], out, {**TINY, "iters": 4}, progress=False)}
    assert (again["short"].status, again["short"].iterations) == ("done", 2)
    assert again["pebbles"].status == again["turned"].status == "skipped"
    assert again["pebbles"].score == float(first["pebbles"]["score"])  # the first run's row, read back
    assert {name: (out / name / "model.safetensors").stat().st_mtime_ns for name in weights} == weights
    assert again["broken"].status == "failed"  # tried again, since it never finished
    assert rows(out)["turned"]["status"] == "skipped"


def test_a_worker_killed_mid_training_is_retried_and_continues_from_its_checkpoint(ray_local, tmp_path, pebbles_path):
    out = tmp_path / "zoo"
    killed: list[int] = []

    def kill_the_worker_once_it_has_a_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if trained_iterations(out / "pebbles") >= 3:
                for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
                    try:
                        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                    except OSError:
                        continue
                    if title == f"ray::{TASK_PREFIX}pebbles":
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_worker_once_it_has_a_checkpoint, daemon=True)
    killer.start()
    (outcome,) = train_many([pebbles_path], out, {**TINY, "iters": 100}, checkpoint_seconds=0, progress=False)
    killer.join(timeout=5)
    assert killed, "the worker finished before it could be killed: raise iters"
    assert outcome.status == "done" and outcome.iterations == 100, outcome
    assert 3 <= outcome.resumed_from < 100  # the retry went on from the checkpoint, not from the start
    assert trained_iterations(out / "pebbles") == 100
    assert rows(out)["pebbles"]["status"] == f"done (resumed at iteration {outcome.resumed_from})"


def test_a_task_no_node_could_run_is_refused_rather_than_left_pending(ray_local, tmp_path, pebbles_path):
    with pytest.raises(ScaleError, match=r"--gpus-per-task 0.5 asks for more than the Ray cluster has \(0 GPUs\)"):
        train_many([pebbles_path], tmp_path / "zoo", {**TINY, "iters": 2}, gpus_per_task=0.5, progress=False)
