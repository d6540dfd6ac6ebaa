"""Bad API calls get a one-line error that names the field, and the server log gets one line, not a traceback.

Wrong types go through gradio_client (it sends whatever it is given); missing
arguments through the plain HTTP API, since gradio_client fills them with the
defaults. The log test runs `app.py` in its own process and reads what it prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port, running_demo
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out

ROOT = Path(__file__).resolve().parent.parent
MODEL = "pebbles (bundled)"


@pytest.fixture(scope="module")
def app_url():
    with running_demo() as url:
        yield url


@pytest.fixture(scope="module")
def session(app_url):
    return Client(app_url, verbose=False)


def error_of(session: Client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as caught:
        session.predict(*args, api_name=api_name)
    return str(caught.value)


@pytest.mark.parametrize(
    "args, message",
    [
        ((MODEL, "abc", 24, 10, 0), "Canvas (pixels a side) must be a whole number from 32 to 1024, got 'abc'"),
        ((MODEL, 64, [1], 10, 0), "Steps must be a whole number from 10 to 4000, got [1]"),
        ((MODEL, 64, 24, 10, "x"), "Seed must be a whole number of at least 0, got 'x'"),
        ((MODEL, 64, 24, True, 0), "Frames per second must be a whole number from 5 to 60, got True"),
        ((["pebbles"], 64, 24, 10, 0), "Model must be one of 'autumn_leaves (bundled)'"),
    ],
)
def test_a_grow_call_with_a_wrong_type_names_the_field(session, args, message):
    assert message in error_of(session, *args, api_name="/grow")


def test_a_train_call_with_wrong_types_names_the_field(session, pebbles_path):
    texture = handle_file(str(pebbles_path))
    assert "Your texture image must be a file (gradio_client: handle_file(path)), got 'abc'" in error_of(
        session, "abc", "seed", "patch", 3, 32, api_name="/train"
    )
    assert "Model size" in error_of(session, texture, 3, "patch", 3, 32, api_name="/train")
    assert "Iterations must be a whole number from 1 to 5000, got 'many'" in error_of(session, texture, "seed", "patch", "many", 32, api_name="/train")
    assert "Round shapes (no sense of direction) must be true or false, got 'yes'" in error_of(
        session, texture, "seed", "patch", 3, 32, "yes", api_name="/train"
    )


def test_the_train_sliders_and_the_api_share_the_ranges_narrowed_from_trainconfig(session, pebbles_path):
    """One definition of each Train range: TrainConfig's, narrowed in studio_settings; the sliders show it, the API refuses outside it."""
    from nca_gradio.studio_settings import TIME_LIMITS, TRAIN_ITERATIONS, TRAIN_SIZES
    from nca_gradio.train import TrainConfig
    from nca_gradio.ui import build_demo

    for (low, high), name in ((TRAIN_ITERATIONS, "iters"), (TRAIN_SIZES, "size"), (TIME_LIMITS, "time_budget")):
        library_low, library_high = TrainConfig.RANGES[name]
        assert low == library_low and high <= library_high
    fields = {block.elem_id: block for block in build_demo().blocks.values() if getattr(block, "elem_id", None)}
    shown = {elem_id: (fields[elem_id].minimum, fields[elem_id].maximum) for elem_id in ("nca-iterations", "nca-size", "nca-time-limit")}
    assert shown == {"nca-iterations": TRAIN_ITERATIONS, "nca-size": TRAIN_SIZES, "nca-time-limit": TIME_LIMITS}

    texture = handle_file(str(pebbles_path))
    for args, message in [
        ((texture, "seed", "patch", 5001, 32), "Iterations must be a whole number from 1 to 5000, got 5001"),
        ((texture, "seed", "patch", 3, 256), "Training size (cells) must be a whole number from 16 to 128, got 256"),
        ((texture, "seed", "patch", 3, 32, False, "off", False, 7200), "Time limit (s) must be a whole number from 0 to 3600, got 7200"),
    ]:
        answer = error_of(session, *args, api_name="/train")
        assert message in answer and "\n" not in answer.strip()


def test_wrong_types_in_the_damage_and_hub_calls_name_the_field(session):
    assert "Shape must be one of 'circle'" in error_of(session, 7, 0.2, api_name="/random_damage")
    assert "Size (fraction of the canvas) must be a number from 0.02 to 0.5, got 'big'" in error_of(session, "circle", "big", api_name="/random_damage")
    assert "Repo id must be text, got ['a', 'b']" in error_of(session, ["a", "b"], "", "", api_name="/pull")
    message = error_of(session, "a/b", "", ["hf_secret_token_value"], api_name="/pull")
    assert "Hub token must be text, got a value that is not shown" in message and "hf_secret" not in message


def call(url: str, api_name: str, data: list) -> str:
    """The plain HTTP API, as curl would use it: the last line of the event stream."""
    event = httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": data}, timeout=30).json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{api_name}/{event}", timeout=120).text.strip().splitlines()[-1]


def test_missing_arguments_are_named(app_url):
    answer = call(app_url, "grow", [MODEL])
    assert ("/grow takes 8 values, got 1: missing Canvas (pixels a side), Steps, Frames per second, Seed, Graft with, "
            "Where the second rule runs, Graft mask") in answer
    assert "missing Model, Canvas" in call(app_url, "grow", [])


# ------------------------------------------------------------------ the server's log


@pytest.fixture(scope="module")
def app_process(tmp_path_factory):
    """`python app.py` on a free port, its stdout and stderr in one log file, its temporary files in a folder of the test's."""
    port = free_port()
    log = tmp_path_factory.mktemp("app-log") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path_factory.mktemp("app-tmp"))}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail(f"app.py did not start: {log.read_text()[-2000:]}")
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_expected_user_errors_log_one_line_each_and_no_traceback(app_process, tmp_path):
    url, log = app_process
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    session = Client(url, verbose=False)
    messages = [
        error_of(session, MODEL, "abc", 24, 10, 0, api_name="/grow"),  # refused before the handler
        error_of(session, None, 64, 24, 10, 0, api_name="/grow"),  # the handler's own gr.Error
        error_of(session, handle_file(str(broken)), api_name="/load_texture"),  # a library error (ImageError)
        error_of(session, "circle", 0.2, 0.5, 0.5, 10, 10, api_name="/heal"),
    ]
    time.sleep(1.0)  # let the server flush its log
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    refused = [line for line in text.splitlines() if "refused /" in line]  # whatever format the log handler adds
    assert len(refused) == len(messages), text[-3000:]
    for line, expected in zip(refused, ["Canvas (pixels a side) must be", "Choose a model first", "not an image this app can read", "Grow a texture"]):
        assert expected in line
