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


def test_adopt_asks_a_new_model_for_its_credit(build, model, tmp_path):
    with pytest.raises(SystemExit, match="needs --credit"):
        build.adopt(model, "adopted", None)
    assert not (tmp_path / "models" / "adopted").exists()


@pytest.mark.slow
def test_adopt_makes_a_whole_bundled_folder_with_its_credit(build, model, tmp_path):
    figures = build.adopt(model, "adopted", "Photo by A. Person, public domain.")
    folder = tmp_path / "models" / "adopted"
    for name in (PREVIEW_FILE, HEALING_FILE, QUALITY_FILE, CARD_FILE, LIVE_FILE):
        assert (folder / name).is_file(), name
    recorded = json.loads((folder / QUALITY_FILE).read_text())
    assert "shape_1024" in recorded and recorded.keys() == figures.keys() - {"model"}
    assert (folder / CARD_FILE).read_text().rstrip().endswith("## Target image\n\nPhoto by A. Person, public domain.")
    assert (folder / LIVE_FILE).read_text() == page_html(load_folder(folder), "adopted", size="auto")
