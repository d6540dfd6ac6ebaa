"""The verdict at the end of a run: grown 1,024 steps, scored as `nca score` does, said in words, on real models."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import nca

from nca_gradio.card import write_card
from nca_gradio.model_folder import load_folder
from nca_gradio.quality import Score
from nca_gradio.verdict import GROWN_SETTINGS, LEARNED, NOT_LEARNED, SHAPES_FAR, assess, grow_for_verdict, judge

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.slow
def test_an_undertrained_model_is_not_learned_and_its_card_says_so_with_the_settings(model, tmp_path):
    folder = Path(shutil.copytree(model, tmp_path / "m"))
    verdict = write_card(folder)  # 3 iterations of the tiny run
    assert verdict.word == NOT_LEARNED and verdict.sentence == "not learned yet: this is noise", verdict
    assert verdict.score.combined > 5 and "more iterations, to 500" in verdict.advice and verdict.goal == 500
    card = (folder / "README.md").read_text()
    assert "**Verdict: not learned yet: this is noise.**" in card and f"Measured on a texture {GROWN_SETTINGS}" in card
    assert f"nca_score: {round(verdict.score.combined, 2)}" in card  # the card's figure is the verdict's, measured once


@pytest.mark.slow
def test_bundled_pebbles_is_learned():
    folder = MODELS / "pebbles"
    verdict = assess(folder, grow_for_verdict(load_folder(folder)))
    assert verdict.word == LEARNED and verdict.advice == "" and verdict.score.combined < 2, verdict


@pytest.mark.slow
def test_nca_train_ends_with_the_verdict(tmp_path, pebbles_path, tiny_flags):
    result = nca("train", pebbles_path, "-o", tmp_path / "m", *tiny_flags(iters=2))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nca: ")]
    assert lines[-5].startswith("nca: saved ") and lines[-4] == "nca: verdict: not learned yet: this is noise", lines
    assert GROWN_SETTINGS in lines[-3] and lines[-2].startswith("nca: train longer: 498 more iterations, to 500")
    assert lines[-1] == f"nca: to go on: nca train {pebbles_path} -o {tmp_path / 'm'} --resume --iters 500"


def test_a_learned_texture_whose_outlined_shapes_are_far_from_the_target_is_told_so():
    near = Score(1.1, 1.0, 1.0, 1.5, (1.0, 1.0, 1.0), shape=1.2)
    far = replace(near, shape=SHAPES_FAR + 0.6)
    assert judge(near) == (LEARNED, ("learned: colours, grain and larger patterns came through (whether whole objects "
                                     "formed, the score cannot tell for sure: look at the preview)"))
    word, sentence = judge(far)
    assert word == LEARNED and "but not the target's shapes" in sentence and f"shape {far.shape:.1f}" in sentence
    assert judge(replace(near, shape=float("nan")))[1] == judge(near)[1]  # an unmeasured shape claims nothing
