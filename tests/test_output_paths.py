"""Every bad output path is one line on stderr with exit 2 (issue 32), and what a command writes replaces whole files."""

import errno
import html.parser
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out

PEBBLES = ROOT / "models" / "pebbles"
IMAGE = ROOT / "tests" / "data" / "pebbles.png"
TINY = ["--preset", "seed", "--iters", "2", "--size", "16", "--target-size", "32", "--batch", "1", "--pool-size", "2",
        "--device", "cpu", "--loss", "patch"]  # fmt: skip


def nca(*args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The command as a user runs it, with this checkout's code wherever it runs (copied from test_cli)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": "http://127.0.0.1:9", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nca_gradio.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd, check=False)


def one_line_refusal(result: subprocess.CompletedProcess, fragment: str) -> str:
    """The command refused with exit 2 and one `nca...: error:` line that says `fragment`, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "error:" in result.stderr and fragment in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def afile(tmp_path) -> Path:
    path = tmp_path / "afile"
    path.write_text("mine")
    return path


def unwritable() -> Path:
    """A folder even root cannot write in (tests run as root, so permissions alone prove nothing)."""
    folder = Path("/sys")
    try:
        (folder / "nca-probe").write_text("x")
    except OSError:
        return folder
    pytest.skip("/sys is writable here")


@pytest.mark.parametrize("where", ["FILE/x.html", "FILE"])
def test_export_under_or_onto_a_file(afile, where):
    out = afile / "x.html" if where == "FILE/x.html" else afile
    args = ["--format", "glsl"] if where == "FILE" else []
    one_line_refusal(nca("export", PEBBLES, "-o", out, *args), f"{afile} is a file, not a folder")
    assert afile.read_text() == "mine"


def test_export_into_a_folder_that_cannot_be_written():
    one_line_refusal(nca("export", PEBBLES, "-o", unwritable() / "x.html"), "cannot write in")


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full")
def test_export_onto_a_device_is_refused_and_the_device_kept(tmp_path):
    link = tmp_path / "full.json"
    link.symlink_to("/dev/full")
    one_line_refusal(nca("export", PEBBLES, "--format", "json", "-o", "/dev/full"), "/dev/full")
    one_line_refusal(nca("export", PEBBLES, "-o", link), "not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and link.is_symlink()


def test_a_full_disk_found_while_writing_is_one_line(tmp_path, monkeypatch, capsys):
    from nca_gradio.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    monkeypatch.setattr(Path, "write_text", full)
    assert main(["export", str(PEBBLES), "-o", str(tmp_path / "model.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err, err
    assert os.listdir(tmp_path) == []  # no temporary file left behind


@pytest.mark.parametrize("where", ["FILE", "FILE/sub", "UNWRITABLE/x"])
def test_train_many_refuses_a_bad_output_before_any_work(afile, where):
    out = {"FILE": afile, "FILE/sub": afile / "sub"}.get(where) or unwritable() / "x"
    fragment = "cannot write in" if where.startswith("UNWRITABLE") else f"{afile} is a file, not a folder"
    one_line_refusal(nca("train-many", IMAGE, "-o", out, *TINY), fragment)


@pytest.mark.parametrize(
    "command",
    [["export", PEBBLES], ["export", PEBBLES, "--format", "html"], ["grow", PEBBLES], ["heal", PEBBLES],
     ["train", IMAGE, *TINY], ["train-many", IMAGE, *TINY], ["pull", "alice/model"]],
    ids=["export", "export-html", "grow", "heal", "train", "train-many", "pull"],
)
def test_an_empty_output_path_is_refused_and_nothing_is_written(tmp_path, command):
    one_line_refusal(nca(*command, "-o", "", cwd=tmp_path), "the output path is empty")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value", ["-5s", "-1.5m", "-0"])
def test_a_negative_time_says_it_must_be_positive(tmp_path, value):
    one_line_refusal(nca("train", IMAGE, "-o", tmp_path / "m", "--time", value), f"'{value}' must be a positive duration")


def test_export_refuses_a_suffix_its_format_does_not_write(tmp_path):
    one_line_refusal(nca("export", PEBBLES, "-o", tmp_path / "page.txt"), "must end in .html")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ a model named <!--<script>


class ScriptCounter(html.parser.HTMLParser):
    """The page's <script> elements as a browser's tokenizer would count them, and the text of each."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = self.closed = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "script":
            self.opened += 1
            self.texts.append("")

    def handle_endtag(self, tag) -> None:
        self.closed += tag == "script"

    def handle_data(self, data) -> None:
        if self.opened > self.closed:
            self.texts[-1] += data


NASTY = "<!--<script>"


@pytest.fixture(scope="module")
def nasty_page(tmp_path_factory) -> Path:
    """`nca export` of a bundled model copied into a folder named <!--<script>."""
    root = tmp_path_factory.mktemp("nasty")
    shutil.copytree(PEBBLES, root / NASTY)
    out = root / "page.html"
    result = nca("export", root / NASTY, "-o", out, "--size", "64")
    assert result.returncode == 0, result.stderr
    return out


def test_a_nasty_model_name_is_escaped_in_every_context(nasty_page):
    page = nasty_page.read_text()
    parser = ScriptCounter()
    parser.feed(page)
    assert parser.opened == parser.closed == 2
    mount = parser.texts[-1]
    for raw in ("<!--", "<script", "</script"):  # inside a script these swallow or close the rest of the page
        assert raw not in mount.lower(), raw
    model = json.loads(mount.split("getElementById(\"nca-live\"), ", 1)[1].split(",\n", 1)[0])
    assert model["name"] == NASTY  # the escapes read back as the name
    assert f"<title>{'&lt;!--&lt;script&gt;'} · live NCA texture</title>" in page


@pytest.mark.browser
def test_the_nasty_page_runs_in_a_browser(nasty_page):
    from conftest import chromium
    from helpers import open_live_page

    with chromium() as browser:
        page = open_live_page(browser, nasty_page.as_uri())
        assert page.title().startswith(NASTY)


# ------------------------------------------------------------------ leftovers: stale files, atomic preview and zip


def test_train_force_removes_the_old_models_files_but_keeps_the_users(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(PEBBLES, folder)
    stale = ["quality.json", "regenerate.gif", "live.html", "train_many.json", "training_state.safetensors"]
    for name in stale:
        (folder / name).write_text("old")
    (folder / "notes.txt").write_text("mine")
    result = nca("train", IMAGE, "-o", folder, "--force", *TINY)
    assert result.returncode == 0, result.stderr
    for name in ("quality.json", "regenerate.gif", "train_many.json"):
        assert not (folder / name).exists(), name
    assert (folder / "live.html").read_text() != "old" and (folder / "training_state.safetensors").read_bytes() != b"old"
    assert (folder / "notes.txt").read_text() == "mine"


def test_write_card_never_leaves_the_folder_without_a_preview(tmp_path, monkeypatch):
    from nca_gradio import card

    folder = tmp_path / "m"
    shutil.copytree(PEBBLES, folder)
    old = (folder / "preview.gif").read_bytes()
    seen: list[bool] = []
    real = card.grow_preview

    def watching(model):
        seen.append((folder / "preview.gif").is_file())
        return real(model)

    monkeypatch.setattr(card, "grow_preview", watching)
    card.write_card(folder)
    assert seen and all(seen)  # while the new preview was being made, the old one was there
    assert (folder / "preview.gif").read_bytes() != old
    assert not [p for p in os.listdir(folder) if p.startswith(".nca-tmp-")]


def test_a_failed_zip_leaves_the_previous_one(tmp_path):
    """A write that fails halfway (a 100 kB file-size limit, as a full disk would) leaves the old zip whole and no temp file."""
    from helpers import env, small_files_only

    destination = tmp_path / "out" / "pebbles.zip"
    destination.parent.mkdir()
    destination.write_bytes(b"the previous zip")
    script = f"from nca_gradio.workspace import zip_model; zip_model({str(PEBBLES)!r}, {str(destination)!r})"
    failed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), preexec_fn=small_files_only,
                            check=False, timeout=120)
    assert failed.returncode != 0
    assert destination.read_bytes() == b"the previous zip" and os.listdir(destination.parent) == ["pebbles.zip"]
    from nca_gradio.workspace import zip_model

    zip_model(PEBBLES, destination)
    assert "pebbles/config.json" in zipfile.ZipFile(destination).namelist()
