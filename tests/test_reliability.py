"""Nothing the user made is lost, nothing crashes or hangs: unwritable outputs, SIGTERM, kill -9, damaged checkpoints,
models that blow up, caps. Real processes and real files throughout (issue 19, items 4-14)."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY
from safetensors.torch import load_file, save_file

from nca_gradio import cli
from nca_gradio.images import load_target
from nca_gradio.model_folder import ModelLoadError, load_folder
from nca_gradio.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def model(tmp_path_factory, pebbles_path, tiny_config) -> Path:
    """A tiny trained model folder with its checkpoint."""
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


def small_files_only() -> None:
    """In a child process: every write past 100 kB fails, as on a full disk (EFBIG instead of ENOSPC)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write instead of a killed process (ffmpeg inherits it)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ------------------------------------------------------------------ 4. the output is checked before training


@pytest.mark.parametrize("case", ["read-only", "a file", "under a file"])
def test_train_refuses_an_output_it_cannot_write_before_training(case, unwritable, tmp_path, pebbles_path, capsys, tiny_flags):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    output = {"read-only": unwritable / "model", "a file": afile, "under a file": afile / "sub"}[case]
    started = time.perf_counter()
    code, stderr = run_main(capsys, "train", pebbles_path, "-o", output, "--iters", "30", *tiny_flags())
    line = one_line_error((code, stderr), str(output if case != "under a file" else afile))
    assert "training" not in stderr.replace(line, "") and time.perf_counter() - started < 20  # refused before training
    assert afile.read_text() == "mine"


def test_a_full_disk_at_save_says_what_failed_and_keeps_the_last_good_checkpoint(model, tmp_path, pebbles_path, tiny_flags):
    """RLIMIT_FSIZE makes every write past 100 kB fail as a full disk would (EFBIG instead of ENOSPC)."""
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    before = snapshot(folder)

    result = nca("train", pebbles_path, "-o", folder, "--resume", "--iters", "5", *tiny_flags(), preexec_fn=small_files_only)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "could not write" in result.stderr and "training_state.safetensors" in result.stderr
    assert snapshot(folder) == before  # nothing half-written, no temporary file left behind
    trainer = Trainer.resume(folder, load_target(pebbles_path, 64), {"iters": 5}, log=lambda m: None)
    assert trainer.iteration == 3


# ------------------------------------------------------------------ 5. an existing model is not replaced silently


def test_train_into_an_existing_model_needs_resume_or_force(model, tmp_path, pebbles_path, capsys, tiny_flags):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    before = snapshot(folder)
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", folder, "--iters", "2", *tiny_flags()), "already holds a model",
                   "--resume", "--force")
    assert snapshot(folder) == before
    assert run_main(capsys, "train", pebbles_path, "-o", folder, "--iters", "1", "--force", *tiny_flags())[0] == 0
    assert json.loads((folder / "training.json").read_text())["iterations"] == 1


# ------------------------------------------------------------------ 6. SIGTERM saves, like Ctrl-C


def _wait_for(path: Path, pattern: str, process: subprocess.Popen, seconds: float = 90) -> None:
    """Until the process has written something matching `pattern` (a regular expression) to `path`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and re.search(pattern, path.read_text(errors="replace")):
            return
        assert process.poll() is None, path.read_text(errors="replace")
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {path}")


def test_sigterm_stops_the_cli_training_and_saves_a_resumable_checkpoint(tmp_path, pebbles_path, tiny_flags):
    folder, log = tmp_path / "model", tmp_path / "stderr"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "nca_gradio.cli", "train", pebbles_path, "-o", folder, "--iters",
                                    "100000", *tiny_flags()], stderr=stderr, stdout=subprocess.DEVNULL, env=env())
        _wait_for(log, r"\b([2-9]|\d\d+)/100000", process)  # two iterations done (the bar may skip some)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in log.read_text() and "--resume continues" in log.read_text()
    done = json.loads((folder / "training.json").read_text())["iterations"]
    assert done >= 2
    result = nca("train", pebbles_path, "-o", folder, "--resume", "--iters", str(done + 1), *tiny_flags())
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / "training.json").read_text())["iterations"] == done + 1


STUDIO_SERVER = textwrap.dedent(f"""
    # The studio's training as app.py runs it: the handler installed in the main thread, training in a worker thread.
    import sys, threading, time
    from pathlib import Path
    from nca_gradio import studio
    from nca_gradio.images import load_target
    from nca_gradio.train import TrainConfig

    folder, stop_file, image = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    studio.stop_trainings_on_sigterm()
    config = TrainConfig(iters=100000, **{TINY!r})

    def session():
        for update in studio.train_stream(folder, load_target(image, 64), config, stop_file):
            print("update", update.iteration, update.stopped, flush=True)

    threading.Thread(target=session, daemon=True).start()
    while True:  # what demo.launch's main thread does
        time.sleep(0.1)
""")


def test_sigterm_stops_the_studio_trainings_and_saves_them(tmp_path, pebbles_path):
    folder, log = tmp_path / "session" / "model", tmp_path / "stdout"
    folder.parent.mkdir()
    script = tmp_path / "server.py"
    script.write_text(STUDIO_SERVER)
    with open(log, "w") as stdout:
        process = subprocess.Popen([sys.executable, script, folder, tmp_path / "session" / "STOP", pebbles_path],
                                   stdout=stdout, stderr=subprocess.STDOUT, env=env())
        _wait_for(log, "update", process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == -signal.SIGTERM  # then it ends as SIGTERM ends a process
    assert "True" in log.read_text().splitlines()[-1]  # the last update says the training stopped
    saved = json.loads((folder / "training.json").read_text())["iterations"]
    assert saved >= 1
    trainer = Trainer.resume(folder, load_target(pebbles_path, 64), {"iters": saved + 1}, log=lambda m: None)
    assert trainer.iteration == saved


# ------------------------------------------------------------------ 7. "wrote" only what was written


@pytest.mark.parametrize("command", ["grow", "heal"])
@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_a_failed_video_write_is_an_error_not_wrote(command, suffix, model, unwritable, capsys):
    out = unwritable / f"y.{suffix}"
    at = ["--at", "4"] if command == "heal" else []
    result = run_main(capsys, command, model, "-o", out, "--size", "32", "--steps", "8", *at)
    one_line_error(result, str(unwritable))
    assert not out.exists() and "wrote" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["grow", "heal"])
@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_a_video_cut_short_by_a_full_disk_is_an_error_and_the_old_one_stays(command, suffix, model, tmp_path):
    out = tmp_path / f"y.{suffix}"
    out.write_bytes(b"the video made yesterday")
    at = ["--at", "48"] if command == "heal" else []
    result = nca(command, model, "-o", out, "--size", "128", "--steps", "96", "--every", "1", *at, preexec_fn=small_files_only)
    one_line_error(result, str(out))
    assert "wrote" not in result.stdout and out.read_bytes() == b"the video made yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_a_video_written_over_an_old_one_replaces_it_whole(model, tmp_path, capsys):
    out = tmp_path / "y.mp4"
    out.write_bytes(b"an older video")
    assert cli.main(["grow", str(model), "-o", str(out), "--size", "32", "--steps", "8"]) == 0
    assert capsys.readouterr().out.startswith(f"nca: wrote {out}")
    import imageio.v3 as iio

    assert len(list(iio.imiter(out))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nca-tmp")]


# ------------------------------------------------------------------ 8. damaged checkpoints


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _edit_json(**changes):
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                del data[key]
            else:
                data[key] = value
        path.write_text(json.dumps(data))
    return edit


def _drop_tensor(name: str):
    def edit(path: Path) -> None:
        tensors = load_file(str(path))
        if name.endswith("."):
            tensors = {k: v for k, v in tensors.items() if not (k.startswith(name) and k.endswith("exp_avg"))}
        else:
            del tensors[name]
        save_file(tensors, str(path))
    return edit


def _bad_generator(path: Path) -> None:
    tensors = load_file(str(path))
    tensors["generator"] = tensors["generator"][:10].clone()
    save_file(tensors, str(path))


DAMAGE = {
    "training.json empty": ("training.json", lambda p: p.write_text("")),
    "training.json truncated": ("training.json", _truncate),
    "training.json a list": ("training.json", lambda p: p.write_text("[]")),
    "training.json without config": ("training.json", _edit_json(config=None)),
    "training.json without iterations": ("training.json", _edit_json(iterations=None)),
    "training.json iterations text": ("training.json", _edit_json(iterations="many")),
    "training.json bad setting": ("training.json", lambda p: p.write_text(p.read_text().replace('"fast"', '"huge"'))),
    "state empty": ("training_state.safetensors", lambda p: p.write_bytes(b"")),
    "state truncated": ("training_state.safetensors", _truncate),
    "state without pool": ("training_state.safetensors", _drop_tensor("pool")),
    "state without generator": ("training_state.safetensors", _drop_tensor("generator")),
    "state with a broken generator": ("training_state.safetensors", _bad_generator),
    "state with half an optimizer": ("training_state.safetensors", _drop_tensor("adam.0.")),
    "weights truncated": ("model.safetensors", _truncate),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_resume_from_a_damaged_checkpoint_names_the_file(case, model, tmp_path, pebbles_path, capsys, tiny_flags):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    name, damage = DAMAGE[case]
    damage(folder / name)
    line = one_line_error(run_main(capsys, "train", pebbles_path, "-o", folder, "--resume", "--iters", "5", *tiny_flags()), name)
    assert "cannot be resumed" in line


KILLED_SAVER = textwrap.dedent(f"""
    # Trains and saves again and again, as fast as it can, until it is killed.
    import sys
    from nca_gradio.card import write_card
    from nca_gradio.images import load_target
    from nca_gradio.train import TrainConfig, Trainer

    folder, target = sys.argv[1], load_target(sys.argv[2], 64)
    trainer = Trainer(target, TrainConfig(iters=100000, **{TINY!r}), log=lambda m: None)
    while True:
        trainer.train(max_seconds=0.01)
        trainer.save(folder, target)
        write_card(folder)
        print("saved", flush=True)
""")


def test_kill_9_at_any_moment_leaves_a_resumable_checkpoint_and_no_empty_preview(tmp_path, pebbles_path):
    folder, script, log = tmp_path / "model", tmp_path / "saver.py", tmp_path / "stdout"
    script.write_text(KILLED_SAVER)
    target = load_target(pebbles_path, 64)
    rng = random.Random(0)
    for _ in range(2):
        with open(log, "w") as stdout:
            process = subprocess.Popen([sys.executable, script, folder, pebbles_path], stdout=stdout, env=env())
            _wait_for(log, "saved", process)
            time.sleep(rng.uniform(0.0, 1.0))
            process.kill()
            process.wait()
        trainer = Trainer.resume(folder, target, {"iters": 100000}, log=lambda m: None)
        assert trainer.iteration >= 1
        preview = folder / "preview.gif"
        assert not preview.exists() or preview.stat().st_size > 0


# ------------------------------------------------------------------ 9. models that blow up


def test_a_model_with_huge_weights_is_refused_when_loaded(model, tmp_path, capsys):
    folder = tmp_path / "huge"
    shutil.copytree(model, folder)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: torch.full_like(v, 3e38) for k, v in weights.items()}, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="blow up to NaN or inf"):
        load_folder(folder)
    one_line_error(run_main(capsys, "grow", folder, "-o", tmp_path / "x.png", "--size", "32", "--steps", "8"), "blow up")


# ------------------------------------------------------------------ 10, 11. caps


def test_grow_refuses_frames_beyond_the_memory_cap_up_front(model, tmp_path):
    started = time.perf_counter()
    result = nca("grow", model, "-o", tmp_path / "big.gif", "--size", "256", "--steps", "2000", "--every", "1", timeout=60)
    one_line_error(result, "2,001 frames", "MB", "cap")
    assert time.perf_counter() - started < 30 and not (tmp_path / "big.gif").exists()


def test_more_threads_than_cores_are_clamped_not_a_crash(model, tmp_path):
    result = nca("--threads", "100000", "grow", model, "-o", tmp_path / "x.png", "--size", "32", "--steps", "4")
    assert result.returncode == 0, result.stderr
    assert "--threads 100000 is more than the" in result.stderr and (tmp_path / "x.png").exists()


# ------------------------------------------------------------------ 13. pipes


def test_training_from_a_pipe_is_refused_not_a_hang(tmp_path, tiny_flags):
    fifo = tmp_path / "texture.png"
    os.mkfifo(fifo)
    one_line_error(nca("train", fifo, "-o", tmp_path / "m", *tiny_flags(), timeout=60), "not a regular file")


# ------------------------------------------------------------------ 14. one-line errors


def _config_holding(text: str):
    def make(folder: Path) -> None:
        (folder / "config.json").write_text(text)
    return make


@pytest.mark.parametrize("text", ['{"channels": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000],
                         ids=["5000-digit integer", "100k nested arrays"])
def test_absurd_config_json_is_a_one_line_error(text, model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    (folder / "config.json").write_text(text)
    one_line_error(run_main(capsys, "grow", folder, "-o", tmp_path / "x.png"), "config.json")


def test_grow_output_and_seed_errors_are_one_line(model, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    (tmp_path / "folder.gif").mkdir()
    one_line_error(run_main(capsys, "grow", model, "-o", tmp_path / "folder.gif"), "is a folder")
    one_line_error(run_main(capsys, "grow", model, "-o", afile / "x.png"), "is a file, not a folder")
    one_line_error(run_main(capsys, "grow", model, "-o", tmp_path / "x.png", "--seed", "99999999999999999999999"), "seed must be")
    one_line_error(run_main(capsys, "train", afile, "-o", tmp_path / "m", "--seed", "99999999999999999999999"), "seed must be")
    assert afile.read_text() == "mine"
