"""A training stopped by SIGTERM or killed with -9 leaves a checkpoint that resumes: the CLI's, the studio's. Real
processes, real signals."""

import json
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import TINY, env, nca

from nca_gradio.images import load_target
from nca_gradio.train import Trainer

pytestmark = pytest.mark.slow  # training processes stopped by signals


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
    from nca_gradio.run import sigterm_stops_runs
    from nca_gradio.train import TrainConfig

    folder, stop_file, image = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    sigterm_stops_runs()
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
