"""models/build.py --adopt: a folder trained by `nca train` becomes a bundled model in one command."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from nca_gradio.live import page_html
from nca_gradio.loading import load_folder
from nca_gradio.model_folder import CARD_FILE, HEALING_FILE, LIVE_FILE, PREVIEW_FILE, QUALITY_FILE, TRAINING_LOG

BUILD = Path(__file__).resolve().parents[1] / "models" / "build.py"
BUNDLED = BUILD.parent / "hubble_dots"  # a model good enough for the zoo, in the files `nca train -o` writes


@pytest.fixture
def build(tmp_path, monkeypatch):
    """models/build.py as a module, its bundled models' folder moved to a temporary one."""
    spec = importlib.util.spec_from_file_location("bundled_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "MODELS", tmp_path / "models")
    (tmp_path / "models").mkdir()
    return module


def test_adopt_refuses_a_folder_that_nca_train_did_not_write(build, model, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(model, half)
    (half / TRAINING_LOG).unlink()
    with pytest.raises(SystemExit, match=f"lacks {TRAINING_LOG}"):
        build.adopt(half, "adopted", "a credit")
    assert not (tmp_path / "models" / "adopted").exists()


def test_adopt_refuses_a_recipe_this_version_cannot_train_again_in_one_line(build, model, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(model, newer)
    log = json.loads((newer / TRAINING_LOG).read_text())
    log["config"]["a_setting_from_elsewhere"] = 1.0
    (newer / TRAINING_LOG).write_text(json.dumps(log))
    with pytest.raises(SystemExit, match="cannot train again: unknown training settings: a_setting_from_elsewhere"):
        build.adopt(newer, "adopted", "a credit")
    assert not (tmp_path / "models" / "adopted").exists()


def test_adopt_asks_a_new_model_for_its_credit(build, model, tmp_path):
    with pytest.raises(SystemExit, match="needs --credit"):
        build.adopt(model, "adopted", None)
    assert not (tmp_path / "models" / "adopted").exists()


@pytest.mark.slow
def test_adopt_refuses_a_model_that_misses_the_bundled_bars_and_leaves_models_unchanged(build, model, tmp_path):
    """The tests' three-iteration model grows NaN by step 4,096: it would fail tests/test_bundled.py."""
    with pytest.raises(SystemExit, match=r"not good enough to bundle: combined_1024 is \d.*; combined_4096 is nan \(at most 2.0\)") as refused:
        build.adopt(model, "adopted", "a credit")
    assert "models/ is unchanged" in str(refused.value)
    assert not (tmp_path / "models" / "adopted").exists()


@pytest.mark.slow
def test_adopt_makes_a_whole_bundled_folder_with_its_credit(build, tmp_path):
    source = tmp_path / "trained"
    shutil.copytree(BUNDLED, source)
    for derived in (PREVIEW_FILE, HEALING_FILE, QUALITY_FILE, CARD_FILE, LIVE_FILE):
        (source / derived).unlink()
    figures = build.adopt(source, "adopted", "Photo by A. Person, public domain.")
    folder = tmp_path / "models" / "adopted"
    for name in (PREVIEW_FILE, HEALING_FILE, QUALITY_FILE, CARD_FILE, LIVE_FILE):
        assert (folder / name).is_file(), name
    recorded = json.loads((folder / QUALITY_FILE).read_text())
    assert "shape_1024" in recorded and recorded.keys() == figures.keys() - {"model"}
    assert recorded["combined_4096"] <= 2.0
    assert (folder / CARD_FILE).read_text().rstrip().endswith("## Target image\n\nPhoto by A. Person, public domain.")
    assert (folder / LIVE_FILE).read_text() == page_html(load_folder(folder), "adopted", size="auto")


def test_a_build_that_misses_the_bars_says_so_and_exits_with_one(build, capsys):
    figures = {"combined_1024": 1.2, "combined_4096": float("nan"), "heal_ratio": 1.4, "shape_1024": 1.0}
    assert build.report([{"model": "good", "combined_1024": 1.0, "combined_4096": 1.1, "heal_ratio": 1.0}]) == 0
    assert build.report([{"model": "bad", **figures, **build.shortfalls_of(figures)}]) == 1
    said = capsys.readouterr()
    assert json.loads(said.out.splitlines()[-1])["fails"] == ["combined_4096 is nan (at most 2.0)",
                                                              "heal_ratio is 1.40 (at most 1.25)"]
    assert "models/bad misses the bundled bars" in said.err
