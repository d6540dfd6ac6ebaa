"""Every bundled model is complete, credited, described by eye, stable and healing, by the figures it ships with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nca_gradio.live import page_html
from nca_gradio.loading import load_folder
from nca_gradio.model_folder import (
    CARD_FILE,
    HEALING_FILE,
    LIVE_FILE,
    PREVIEW_FILE,
    QUALITY_FILE,
    TARGET_FILE,
    WEIGHTS_FILE,
    read_training_log,
)
from nca_gradio.quality import BUNDLED_HEALS, BUNDLED_STABLE
from nca_gradio.train_config import TrainConfig

MODELS = Path(__file__).resolve().parents[1] / "models"
FOLDERS = sorted(p.parent for p in MODELS.glob("*/config.json"))


def test_the_zoo_has_at_least_sixteen_models():
    assert len(FOLDERS) >= 16, [f.name for f in FOLDERS]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_a_bundled_model_ships_whole_with_its_credit_and_what_it_grows(folder: Path):
    for name in (WEIGHTS_FILE, TARGET_FILE, CARD_FILE, QUALITY_FILE, PREVIEW_FILE, HEALING_FILE, LIVE_FILE):
        assert (folder / name).is_file(), name
    card = (folder / CARD_FILE).read_text()
    credit = card.partition("\n## Target image\n")[2].strip()
    assert credit, "the card names the target image's source and licence"
    notes = json.loads((MODELS / "notes.json").read_text())
    assert notes[folder.name]["well"] and notes[folder.name]["badly"]
    assert notes[folder.name]["badly"] in card  # the card says what it grows badly, not only the README


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_a_bundled_model_can_be_trained_again_from_its_recorded_recipe(folder: Path):
    """models/build.py --again and the card's train-again line read this recipe: a setting today's TrainConfig
    does not know (one written by a version that had it) would break both."""
    TrainConfig.from_dict(read_training_log(folder)["config"])


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_a_bundled_model_is_stable_for_thousands_of_steps_and_heals(folder: Path):
    figures = json.loads((folder / QUALITY_FILE).read_text())
    assert figures["combined_1024"] <= BUNDLED_STABLE and figures["combined_4096"] <= BUNDLED_STABLE
    assert figures["heal_ratio"] <= BUNDLED_HEALS  # healed / undamaged, the worst of three heals
    assert "shape_1024" in figures


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_a_bundled_live_page_is_the_one_the_runtime_makes_today(folder: Path):
    """The pages inline the WebGL runtime, so a change to nca_gradio/static leaves them stale until rebuilt."""
    page = page_html(load_folder(folder), folder.name, size="auto")
    assert (folder / LIVE_FILE).read_text() == page, f"stale: python models/build.py --card {folder.name}"
