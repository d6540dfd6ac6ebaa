"""Two rules on one grid (`nca_gradio.graft`, `nca graft`): each cell runs the rule its mask names, compatible rules blend."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import ROOT, nca
from PIL import Image

from nca_gradio.graft import Graft, compatible, image_mask, split_mask
from nca_gradio.model import NCA, NCAConfig
from nca_gradio.render import Damage, RenderError, grow, heal


def rule(channels: int = 6, hidden: int = 16, perception: str = "sobel", seed: int = 0, fire_rate: float = 0.5) -> NCA:
    torch.manual_seed(seed)
    model = NCA(NCAConfig(channels=channels, hidden=hidden, perception=perception, fire_rate=fire_rate))
    torch.nn.init.normal_(model.w2.weight, std=0.05)
    return model.eval()


def blended(a: NCA, b: NCA, amount: float) -> NCA:
    """The one rule whose weights are (1 - amount) A + amount B."""
    mixed = copy.deepcopy(a)
    mixed.load_state_dict({k: (1 - amount) * v + amount * b.state_dict()[k] for k, v in a.state_dict().items()})
    return mixed


def test_an_all_a_mask_grows_a_and_an_all_b_mask_grows_b():
    a, b = rule(seed=1), rule(seed=2)
    for ones, alone in ((0.0, a), (1.0, b)):
        graft = Graft(a, b, torch.full((24, 24), ones))
        # the same coins (one draw per cell and step, as `model.draw_masks`); the sums differ only in rounding
        torch.testing.assert_close(grow(graft, 24, 30, precision="float32").state, grow(alone, 24, 30, precision="float32").state,
                                   atol=1e-3, rtol=1e-3)


def test_a_grey_mask_runs_the_rule_with_blended_weights():
    a, b = rule(seed=1), rule(seed=2)
    x = torch.randn(1, 6, 16, 16) * 0.3
    for amount in (0.25, 0.5, 0.8):
        graft = Graft(a, b, torch.full((16, 16), amount))
        torch.testing.assert_close(graft.update(x), blended(a, b, amount).update(x), atol=1e-5, rtol=1e-5)


def test_each_cell_blends_by_its_own_mask_value():
    a, b = rule(seed=1), rule(seed=2)
    mask = torch.linspace(0, 1, 16)[None, :].expand(16, 16).contiguous()
    x = torch.randn(1, 6, 16, 16) * 0.3
    update = Graft(a, b, mask).update(x)
    for column in (0, 5, 15):
        torch.testing.assert_close(update[..., column], blended(a, b, float(mask[0, column])).update(x)[..., column], atol=1e-5, rtol=1e-5)


def test_unrelated_rules_each_run_on_their_own_channels_and_grey_reads_as_the_nearer():
    a, b = rule(channels=8, hidden=16, seed=1), rule(channels=5, hidden=9, perception="isotropic", seed=2)
    assert not compatible(a, b)
    graft = Graft(a, b, torch.tensor([[0.2, 0.49, 0.5, 0.9]]).expand(4, 4).contiguous())
    assert graft.channels == 8 and not graft.blends
    x = torch.randn(1, 8, 4, 4) * 0.3
    update = graft.update(x)
    torch.testing.assert_close(update[..., :2], a.update(x)[..., :2])
    torch.testing.assert_close(update[:, :5, :, 2:], b.update(x[:, :5])[..., 2:])
    assert (update[:, 5:, :, 2:] == 0).all()  # B has no channels 5..7: it leaves them alone


def test_all_b_from_a_larger_grid_grows_b_on_its_channels():
    a, b = rule(channels=8, seed=1), rule(channels=5, perception="isotropic", seed=2)
    grown = grow(Graft(a, b, torch.ones(20, 20)), 20, 25, precision="float32").state
    torch.testing.assert_close(grown[:, :5], grow(b, 20, 25, precision="float32").state)
    assert (grown[:, 5:] == 0).all()


def test_each_cell_fires_at_its_own_rules_rate():
    a, b = rule(seed=1, fire_rate=0.2), rule(seed=2, fire_rate=0.9)
    graft = Graft(a, b, split_mask("vertical", 64, 64))
    fired = graft.fire(torch.zeros(1, 6, 64, 64), 50, torch.Generator().manual_seed(0)).mean(dim=(0, 1, 2))
    assert abs(float(fired[:, :32].mean()) - 0.2) < 0.02 and abs(float(fired[:, 32:].mean()) - 0.9) < 0.02


def test_splits_put_b_where_they_say():
    vertical, horizontal, circle = (split_mask(s, 32, 48) for s in ("vertical", "horizontal", "circle"))
    assert vertical.shape == (32, 48) and vertical[:, :24].sum() == 0 and vertical[:, 24:].min() == 1
    assert horizontal[:16].sum() == 0 and horizontal[16:].min() == 1
    assert circle[16, 24] == 1 and circle[0, 0] == 0 and circle[16, 0] == 0
    with pytest.raises(RenderError, match="vertical, horizontal, circle"):
        split_mask("diagonal", 8, 8)


def test_an_image_mask_is_its_grey_level_stretched_to_the_grid(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray(np.kron(np.array([[0, 255], [255, 0]], np.uint8), np.ones((32, 32), np.uint8))).save(path)
    mask = image_mask(path, 8, 8)
    assert mask.shape == (8, 8) and mask[0, 0] == 0 and mask[0, 7] == 1 and mask[7, 0] == 1


def test_a_mask_out_of_range_or_of_the_wrong_size_is_refused():
    a, b = rule(seed=1), rule(seed=2)
    with pytest.raises(RenderError, match="from 0"):
        Graft(a, b, torch.full((8, 8), 1.5))
    with pytest.raises(RenderError, match="grow it at that size"):
        grow(Graft(a, b, torch.zeros(8, 8)), size=16, steps=2)


def test_a_grafted_grid_heals_where_it_was_damaged():
    a, b = rule(seed=1), rule(seed=2)
    graft = Graft(a, b, split_mask("vertical", 32, 32))
    damage = Damage("circle", 0.5, 0.5, 0.25)
    healed = heal(graft, damage, size=32, grow_steps=40, heal_steps=40, every=40, precision="float32")
    erased = damage.mask(32, 32)[0, 0].bool()
    assert (healed.frames[1][erased.numpy()] != 128).any()  # before: grown; the damage then empties the region
    assert (healed.state[0, :, erased] != 0).any()  # and the rules grow it back
    assert torch.isfinite(healed.state).all()


def test_fire_rates_of_compatible_rules_need_not_match():
    a = rule(seed=1, fire_rate=0.5)
    b = NCA(replace(a.config, fire_rate=1.0))
    b.load_state_dict(a.state_dict())
    assert compatible(a, b)


@pytest.mark.slow
def test_nca_graft_writes_png_and_gif(tmp_path, model):
    for out in ("graft.png", "graft.gif"):
        done = nca("graft", str(model), str(model), "-o", str(tmp_path / out), "--split", "circle", "--size", "32", "--steps", "8")
        assert done.returncode == 0, done.stderr
        assert "wrote" in done.stdout and (tmp_path / out).stat().st_size > 0
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))).save(mask)
    done = nca("graft", str(model), str(model), "-o", str(tmp_path / "m.png"), "--mask", str(mask), "--size", "32", "--steps", "8")
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # an `nca` process each
@pytest.mark.parametrize(
    "extra, said",
    [
        ([], "one of the arguments --split --mask is required"),
        (["--split", "vertical", "--mask", "m.png"], "not allowed with argument"),
        (["--split", "diagonal"], "invalid choice"),
        (["--mask", "missing.png"], "missing.png"),
    ],
)
def test_nca_graft_refuses_bad_input_in_one_line(tmp_path, model, extra, said):
    done = nca("graft", str(model), str(model), "-o", str(tmp_path / "g.png"), *extra, cwd=tmp_path)
    assert done.returncode == 2
    assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow
def test_bundled_halves_keep_their_textures_and_the_seams_hold_for_4096_steps():
    """`nca graft`'s promise: away from the seams, each half scores within 1.5x of its model grown alone (bench/graft_seams.py)."""
    from nca_gradio.images import load_target
    from nca_gradio.model_folder import load_folder
    from nca_gradio.quality import score

    models = ROOT / "models"
    a, b = load_folder(models / "pebbles"), load_folder(models / "starry_sky")
    size = 128
    grafted = grow(Graft(a, b, split_mask("vertical", size, size)), size, 4096, every=4096, keep_frames=False)
    assert torch.isfinite(grafted.state).all() and grafted.state.abs().max() < 3  # no runaway cells at the seams

    def strip(frame: np.ndarray, start: int) -> torch.Tensor:  # a quarter of the width, a quarter away from each seam
        return torch.from_numpy(frame[:, start : start + size // 4]).permute(2, 0, 1)[None].float() / 255

    for rule, name, start in ((a, "pebbles", size // 8), (b, "starry_sky", size // 2 + size // 8)):
        target = load_target(models / name / "target.png", 128)
        alone = score(strip(grow(rule, size, 1024, every=1024, keep_frames=False).final, start), target).combined
        together = score(strip(grafted.final, start), target).combined
        assert together < 1.5 * alone, (name, together, alone)


def test_nca_heal_grafts_a_second_rule_where_the_split_says(tmp_path, model, capsys):
    from helpers import model_folder

    from nca_gradio.cli import main
    from nca_gradio.model_folder import load_folder
    from nca_gradio.render import save_animation

    b = model_folder(tmp_path / "b", seed=3)
    rollout_flags = ["--size", "32", "--steps", "16", "--at", "8", "--every", "4"]
    assert main(["heal", str(model), "--graft", str(b), "--split", "vertical", "-o", str(tmp_path / "g.gif"), *rollout_flags]) == 0
    assert f"grafted with {b}" in capsys.readouterr().out
    rules = Graft(load_folder(model), load_folder(b), split_mask("vertical", 32, 32))
    rollout = heal(rules, Damage(), size=32, grow_steps=8, heal_steps=8, every=4, seed=0, precision="float32")
    save_animation(rollout.frames, tmp_path / "library.gif", fps=25)
    assert (tmp_path / "g.gif").read_bytes() == (tmp_path / "library.gif").read_bytes()  # the same graft, seed and steps
    assert main(["heal", str(model), "-o", str(tmp_path / "alone.gif"), *rollout_flags]) == 0
    assert (tmp_path / "alone.gif").read_bytes() != (tmp_path / "g.gif").read_bytes()


@pytest.mark.parametrize("extra", [["--graft", "B"], ["--split", "vertical"], ["--mask", "m.png"]])
def test_nca_heal_wants_a_graft_and_where_it_runs_together(tmp_path, model, capsys, extra):
    from helpers import one_line_error, run_main

    one_line_error(run_main(capsys, "heal", model, "-o", tmp_path / "h.gif", *extra), "--graft B needs --split or --mask")
    assert not (tmp_path / "h.gif").exists()
