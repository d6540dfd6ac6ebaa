"""The studio's pure helpers: resumable training chunks (the ZeroGPU path), stopping, renders, the heal curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nca_gradio import studio
from nca_gradio.card import card_markdown
from nca_gradio.damage import damage_at_pixel, damage_overlay, display_scale, for_display, random_damage
from nca_gradio.images import image_to_tensor, load_image
from nca_gradio.model_folder import load_folder
from nca_gradio.render import Damage, RenderError
from nca_gradio.train import Status
from nca_gradio.workspace import Grown, Workspace, zip_model

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.fixture
def workspace():
    ws = Workspace()
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def target(pebbles_path):
    from nca_gradio.images import load_target

    return load_target(pebbles_path, 64)


@pytest.mark.slow
def test_training_in_short_chunks_resumes_to_the_end(workspace, target, tiny_config):
    """What ZeroGPU does: each chunk resumes the checkpoint the last one saved."""
    folder = workspace.path("model")
    updates = list(studio.train_stream(folder, target, tiny_config(preset="seed", iters=5), workspace.stop_file, chunk_seconds=1e-3))
    assert [u.iteration for u in updates] == [1, 2, 3, 4, 5]  # one iteration per chunk
    assert updates[-1].finished and [h["iteration"] for h in updates[-1].history] == [1, 2, 3, 4, 5]
    assert load_folder(folder).channels == 4


@pytest.mark.slow
def test_stop_keeps_the_model_trained_so_far(workspace, target, tiny_config):
    folder = workspace.path("model")
    stream = studio.train_stream(folder, target, tiny_config(iters=1000), workspace.stop_file)
    first = next(stream)
    workspace.request_stop()
    last = list(stream)[-1]
    assert last.stopped and not last.finished and last.iteration >= first.iteration
    assert (folder / "model.safetensors").exists()
    workspace.clear_stop()
    assert not workspace.stop_file.exists()


def test_sessions_keep_their_own_labels_and_files(tmp_path):
    a, b = Workspace(), Workspace()
    try:
        assert a.add_model("pebbles", tmp_path / "1") == "pebbles"
        assert a.add_model("pebbles", tmp_path / "2") == "pebbles #2"
        assert a.add_model("again", tmp_path / "1") == "pebbles" and a.latest == "pebbles"
        assert b.models == {} and a.path("x").parent != b.path("x").parent
        folder = a.root
    finally:
        a.close(), b.close()
    assert not folder.exists() and a.root is None and a.models == {}


def test_render_limits_say_what_to_change():
    studio.check_render(256, 512, torch.device("cpu"))
    with pytest.raises(RenderError, match="use at most 32 steps at this size"):
        studio.check_render(1024, 100, torch.device("cpu"))
    studio.check_render(1024, 4000, torch.device("cuda"))
    with pytest.raises(RenderError, match="use at most 1000 steps at this size"):
        studio.check_render(2048, 1001, torch.device("cuda"))
    assert studio.frame_every(400, 256) == 2 and studio.frame_every(10, 64) == 1
    frames = 1000 // studio.frame_every(1000, 1024) + 1  # a 1024 canvas keeps fewer frames, to fit in memory
    assert frames * 3 * 1024 * 1024 <= studio.MAX_FRAME_BYTES + 3 * 1024 * 1024


def test_a_click_on_the_zoomed_canvas_maps_back_to_the_grid():
    frame = np.zeros((64, 64, 3), np.uint8)
    shown = for_display(frame)
    zoom = display_scale(frame)
    assert shown.shape == (64 * zoom, 64 * zoom, 3)
    damage = damage_at_pixel("circle", 0.1, 0.25 * shown.shape[1], 0.75 * shown.shape[0], shown.shape[1], shown.shape[0])
    assert damage.x == pytest.approx(0.25, abs=0.01) and damage.y == pytest.approx(0.75, abs=0.01)
    overlay = damage_overlay(frame, damage)
    assert overlay[48, 16].any() and not overlay[16, 48].any()  # tinted at the click, untouched elsewhere


def test_heal_curve_starts_at_zero_and_jumps_at_the_damage(target):
    from nca_gradio.render import Rollout

    texture = (target[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    damaged = texture.copy()
    damaged[16:48, 16:48] = 128
    rollout = Rollout([texture, texture, damaged, texture], [0, 4, 8, 12], torch.zeros(1, 4, 64, 64))
    curve = studio.heal_curve(rollout, texture)
    assert list(curve["step"]) == [0, 4, 8, 12]
    losses = list(curve["texture loss"])
    assert losses[0] == losses[1] == losses[3] == pytest.approx(0.0, abs=1e-7) and losses[2] > 1e-4


def test_card_markdown_drops_front_matter_and_repo_images():
    text = "---\nlicense: mit\ntags: [a]\n---\n\n# pebbles\n\n![growing](preview.gif)\n\nA model. ![x](https://example.org/x.png)\n"
    assert card_markdown(text) == "# pebbles\n\nA model. ![x](https://example.org/x.png)"


def test_random_damage_lands_anywhere_away_from_the_edges():
    import random

    rng = random.Random(3)
    spots = [random_damage("stripe", 0.3, rng) for _ in range(200)]
    assert {(d.shape, d.size) for d in spots} == {("stripe", 0.3)}
    xs, ys = [d.x for d in spots], [d.y for d in spots]
    assert 0.15 <= min(xs) and max(xs) <= 0.85 and 0.15 <= min(ys) and max(ys) <= 0.85
    assert min(xs) < 0.25 and max(xs) > 0.75 and min(ys) < 0.25 and max(ys) > 0.75  # spread over the canvas, not one spot


SPIKY_HISTORY = [
    {"iteration": 1, "loss": 4200.6, "texture": 2.9, "overflow": 4197.7},
    {"iteration": 2, "loss": 339.6, "texture": 0.61, "overflow": 338.99},
    {"iteration": 3, "loss": 0.6, "texture": 0.6, "overflow": 0.0},
]


def test_the_loss_curve_plots_the_texture_loss_and_keeps_overflow_for_the_tooltip():
    table = studio.loss_table(SPIKY_HISTORY)
    assert list(table["iteration"]) == [1, 2, 3]
    assert list(table["log10 texture loss"]) == pytest.approx(np.log10([2.9, 0.61, 0.6]))  # not log10(4200.6): no spike
    assert list(table["texture loss"]) == ["2.9", "0.61", "0.6"] and list(table["overflow"]) == ["4.2k", "339", "0"]


def test_losses_read_as_three_significant_digits():
    assert [studio.readable(v) for v in (0.61234, 339.6, 12345.0, 31234.5, 4.5e6, 0.000123)] == ["0.612", "340", "12.3k", "31.2k", "4.5M", "0.000123"]
    assert [studio.duration(s) for s in (4.4, 200, 3900)] == ["4 s", "3 min 20 s", "1 h 05 min"]


def test_the_status_shows_the_texture_loss_and_the_time_left():
    from nca_gradio.ui import train_status

    update = Status(2, 10, 30.0, "patch", "cpu", SPIKY_HISTORY[:2], finished=False, stopped=False)
    status = train_status(update)
    assert f"texture loss {studio.readable((2.9 + 0.61) / 2)} ·" in status and "339" not in status  # the median of the recent ones
    assert "30 s elapsed · about 2 min 00 s left" in status
    done = Status(10, 10, 150.0, "patch", "cpu", SPIKY_HISTORY, finished=True, stopped=False)
    assert "left" not in train_status(done, "pebbles") and "2 min 30 s elapsed" in train_status(done, "pebbles")


def test_workspace_files_keep_their_clean_names(workspace):
    first, second = workspace.path("pebbles-64px.png"), workspace.path("pebbles-64px.png")
    assert first.name == second.name == "pebbles-64px.png" and first != second and first.parent.is_dir()


@pytest.mark.slow
def test_a_zipped_model_unpacks_into_one_folder_that_loads(workspace, tmp_path):
    import zipfile

    archive = zip_model(MODELS / "pebbles", workspace.path("my-pebbles.zip"))
    with zipfile.ZipFile(archive) as zipped:
        assert {name.split("/")[0] for name in zipped.namelist()} == {"my-pebbles"}
        zipped.extractall(tmp_path)
    assert load_folder(tmp_path / "my-pebbles").channels > 0


def test_steps_that_fit_are_what_the_render_check_accepts():
    cpu = torch.device("cpu")
    for size in (64, 256, 1024):
        most = studio.most_steps(size, device=cpu)
        studio.check_render(size, most, cpu)
        if most < studio.MAX_RENDER_STEPS:
            with pytest.raises(RenderError, match=f"use at most {most} steps"):
                studio.check_render(size, most + 1, cpu)
        heal = studio.most_heal_steps(size, cpu)
        studio.check_render(size, heal + studio.lead_steps(studio.frame_every(heal, size), heal), cpu, grids=studio.HEAL_GRIDS)
    assert studio.most_steps(1024, device=cpu) == 32 and studio.most_steps(32, device=cpu) == studio.MAX_RENDER_STEPS


@pytest.mark.slow
def test_healing_runs_an_undamaged_twin_and_pebbles_heals_in_the_erased_region():
    folder = MODELS / "pebbles"
    grown = studio.grow_texture(folder, 64, 400, 400, seed=0)  # grown out, as the Grow tab leaves it
    damage = Damage("circle", 0.5, 0.5, 0.3)
    healing = studio.heal(folder, grown.state, damage, 120, 4, seed=1)
    assert len(healing.undamaged) == len(healing.rollout.frames) and healing.rollout.state.shape[0] == 1
    curve = studio.heal_curve(healing.rollout, grown.final, healing.undamaged)
    damaged = curve[curve["grid"] == studio.DAMAGED]["texture loss"].to_numpy()
    twin = curve[curve["grid"] == studio.UNDAMAGED]["texture loss"].to_numpy()
    assert twin[0] == pytest.approx(0.0, abs=1e-7) and twin.max() > 0.0  # a living texture drifts from its start by itself
    assert (damaged > 3 * twin + 0.01).any()  # the damage shows against the twin at the same step
    lead = studio.lead_steps(4, 120)
    just_after = healing.rollout.steps.index(lead + 4)
    assert studio.region_ratio(healing.rollout.frames[just_after], healing.undamaged[just_after], damage) > 3 * studio.HEALED_RATIO
    verdict = studio.heal_verdict(healing, damage, lead + 1, grown_steps=400, target=image_to_tensor(load_image(folder / "target.png")))
    assert verdict.healed and verdict.region <= studio.HEALED_RATIO, verdict
    assert 400 + lead < verdict.healed_at <= 400 + lead + 120 and f"by step {verdict.healed_at}" in verdict.sentence  # from the start of growth


def test_an_undertrained_model_is_never_called_healed(model):
    grown = studio.grow_texture(model, 64, 200, 200, seed=0)
    damage = Damage("circle", 0.5, 0.5, 0.3)
    healing = studio.heal(model, grown.state, damage, 60, 4, seed=1)
    target = image_to_tensor(load_image(model / "target.png"))
    judged = studio.heal_verdict(healing, damage, studio.lead_steps(4, 60) + 1, 200, target)
    assert not judged.healed and judged.healed_at is None and "cannot be judged" in judged.sentence and "not learned" in judged.sentence
    by_region = studio.heal_verdict(healing, damage, studio.lead_steps(4, 60) + 1, 200)  # without its target: the frames alone
    assert not by_region.healed, by_region


def test_a_large_grown_texture_lowers_the_healing_steps_to_what_fits(workspace):
    from nca_gradio.ui import Handlers

    side = 1024
    workspace.grown = Grown("pebbles (bundled)", MODELS / "pebbles", torch.zeros(1, 12, side, side), np.zeros((side, side, 3), np.uint8))
    _, note, slider = Handlers(MODELS, []).show_grown(workspace, 300)
    most = studio.most_heal_steps(side)
    assert f"heals up to {most} steps" in note
    if most < 300:  # a CPU
        assert slider.value <= most and slider.value % 10 == 0


def test_the_train_settings_become_one_trainconfig_and_say_which_field_is_out_of_range():
    from nca_gradio.studio_settings import SettingError, StudioTrainSettings, narrowed
    from nca_gradio.train import TrainConfig

    config = StudioTrainSettings(preset="seed", loss="patch", iterations=7, size=32, isotropic=True, objects="light", practise_healing=True,
                                 time_limit=90).config("cpu")
    assert (config.preset, config.loss, config.iters, config.size) == ("seed", "patch", 7, 32)
    assert (config.perception, config.match_weight, config.damage_every, config.time_budget) == ("isotropic", 0.01, 4, 90.0)
    assert StudioTrainSettings(isotropic=True, objects="light", practise_healing=True).traits(config) == " · round · light objects · heals"
    one_minute = StudioTrainSettings(time_limit=60).config("cpu")  # the short recipe, as `nca train --time 60s` gets it
    assert (one_minute.preset, one_minute.size, one_minute.steps_max, one_minute.iters) == ("fast", 32, 64, TrainConfig().iters)
    chosen = StudioTrainSettings(time_limit=60, size=48, iterations=200).config("cpu")
    assert (chosen.size, chosen.iters) == (48, 200)
    assert StudioTrainSettings().config("cpu").size == 64  # no time limit: the sliders as they stand
    with pytest.raises(SettingError, match=r"^Training size must be a whole number from 16 to 128, got 256$"):
        StudioTrainSettings(size=256).config("cpu")
    with pytest.raises(SettingError, match=r"^Time limit must be a whole number from 0 to 3600, got 3601$"):
        StudioTrainSettings(time_limit=3601).config("cpu")
    with pytest.raises(ValueError, match="outside TrainConfig's range"):
        narrowed("size", 1024)  # the studio may offer less than the library, never more


@pytest.mark.slow  # loads the start model (each load grows a probe grid)
def test_a_start_model_sets_the_architecture_whatever_the_size_and_round_shapes_controls_say(tmp_path):
    from dataclasses import asdict

    from helpers import model_folder

    from nca_gradio.model_folder import load_folder
    from nca_gradio.studio_settings import StudioTrainSettings
    from nca_gradio.ui import Handlers
    from nca_gradio.workspace import Workspace

    start = model_folder(tmp_path / "A", preview=False)  # 4 channels, 8 hidden: the seed preset's size, sobel
    workspace = Workspace()
    label = workspace.add_model("pebbles · seed · 3 it", start)
    settings = StudioTrainSettings(preset="texture", isotropic=True, start_from=label)
    config = settings.config("cpu", start=load_folder(start).config)
    assert (config.preset, config.perception, config.start_from) == ("seed", "sobel", label)
    assert settings.traits(config) == " · fine-tuned"  # not round: the start model is not
    said = Handlers(tmp_path / "no-models", []).expected_time(workspace, **asdict(settings))
    assert said.startswith(f"Starting from {label}: the model size (seed) and no round shapes are that model's") and "Expected: about" in said
    assert Handlers(tmp_path / "no-models", []).expected_time(Workspace(), **asdict(settings)) == ""  # not this session's model
