"""bench/multiscale_rule.py, the multi-scale perception of issue 30's trial: its figures mean something only if it
perceives what it says (on a torus, the grid's own scale unchanged) and trains through the Trainer as the library does."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.multiscale_rule import MultiScaleNCA, grow_reference, torus_double, torus_upsample, use_multiscale
from nca_gradio.model import NCA
from nca_gradio.train import TrainConfig, Trainer


def tiny_trainer(iters: int) -> Trainer:
    """A Trainer on a random 32 px target, small enough to step in a test."""
    config = TrainConfig(iters=iters, size=32, batch=2, pool_size=4, steps_min=4, steps_max=8, seed=0)
    return Trainer(torch.rand(1, 3, 32, 32), config, log=lambda _: None)


def test_the_fast_doubling_is_bilinear_upsampling_on_a_torus():
    y = torch.randn(2, 5, 6, 8)
    assert torch.allclose(torus_double(y), torus_upsample(y, 2), atol=1e-6)
    # on a torus: shifting the grid one coarse cell shifts the upsampled grid two fine cells, with no edge effects
    assert torch.allclose(torus_double(torch.roll(y, 1, -1)), torch.roll(torus_double(y), 2, -1), atol=1e-6)
    assert torch.allclose(torus_double(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 8, 8))


def test_at_the_grid_scale_alone_it_perceives_as_the_library_does():
    torch.manual_seed(0)
    x = torch.randn(1, 12, 16, 16)
    assert torch.equal(MultiScaleNCA(scales=(0,)).perceive(x), NCA().perceive(x))


def test_coarse_scales_see_what_the_grid_scale_cannot():
    """A change 6 cells away moves a cell's perception only through the coarse scales."""
    x = torch.zeros(1, 12, 32, 32)
    far = x.clone()
    far[:, :, 16, 22] = 1.0  # 6 cells right of cell (16, 16)
    plain, multi = MultiScaleNCA(scales=(0,)), MultiScaleNCA(scales=(0, 1, 2))
    assert torch.equal(plain.perceive(far)[..., 16, 16], plain.perceive(x)[..., 16, 16])
    assert not torch.allclose(multi.perceive(far)[..., 16, 16], multi.perceive(x)[..., 16, 16])


def test_a_trainer_trains_the_multiscale_rule_from_the_same_start():
    trainer = tiny_trainer(4)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    model = use_multiscale(trainer, (0, 1))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())
    for _ in range(2):
        assert not trainer.train_step()["rolled_back"]
    assert trainer.model is model and not torch.equal(model.w2.weight, start["w2.weight"])
    grown = grow_reference(model, 32, 16, seed=0)
    assert grown.shape == (1, 12, 32, 32) and torch.isfinite(grown).all()


def test_side_by_side_the_rule_starts_as_the_plain_one_and_learns_the_coarse_scales():
    trainer = tiny_trainer(4)
    plain = NCA(trainer.model.config)
    plain.load_state_dict(trainer.model.state_dict())
    model = use_multiscale(trainer, (0, 1), concat=True)
    x = torch.randn(1, 12, 32, 32)
    assert model.w1.in_channels == 2 * plain.w1.in_channels
    assert torch.allclose(model.w1(model.perceive(x)), plain.w1(plain.perceive(x)), atol=1e-5)
    with torch.no_grad():
        model.w2.weight.normal_(std=0.01)  # the coarse weights get a gradient once the rule changes anything
    trainer.train_step()
    assert model.w1.weight[:, plain.w1.in_channels :].abs().sum() > 0


def test_the_trainers_finite_check_grows_the_multiscale_rule_itself():
    """The library's check steps through `fast.py`, which folds a 3x3 perception only: side by side it cannot even run."""
    trainer = tiny_trainer(20)
    use_multiscale(trainer, (0, 1), concat=True)
    for _ in range(10):  # the 10th iteration checks the model before keeping it as the last good one
        trainer.train_step()
    assert trainer._last_good["iteration"] == 10
