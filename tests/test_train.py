"""The trainer: validated config, learning on a real texture, stop, resume, NaN rollback, reproducibility."""

import json

import pytest
import torch
from helpers import TINY

from nca_gradio.checkpoint import CheckpointError
from nca_gradio.losses import PatchLoss
from nca_gradio.model_folder import load_folder
from nca_gradio.quality import score
from nca_gradio.render import grow
from nca_gradio.train import RUNAWAY_BOUND, ConfigError, TrainConfig, Trainer, pick_device, reset_runaways, train


def tiny(**overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "iters": 4, **overrides})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("iters", 0, "iters must be between 1 and"),
        ("size", 8, "size must be between 16 and 512"),
        ("lr", -1.0, "lr must be between"),
        ("batch", 2.5, "batch must be an integer"),
        ("preset", "huge", "preset must be one of texture, fast, seed"),
        ("loss", "l1", "loss must be one of"),
        ("device", "tpu", "device must be one of"),
        ("steps_min", 100, "steps_min (100) must not exceed steps_max"),
        ("lr", float("nan"), "lr must be between"),
        ("match_weight", -0.1, "match_weight must be between 0.0 and 10.0"),
        ("loss", "ot", "match_weight is part of the patch loss: use loss patch"),
        ("precision", "float16", "precision must be one of auto, float32, bfloat16"),
        ("damage_every", -1, "damage_every must be between 0 and 100000"),
    ],
)
def test_bad_config_names_the_field_and_range(field, value, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{**TINY, "match_weight": 0.02, field: value})
    assert message in str(info.value)


def test_config_round_trips_and_refuses_unknown_keys():
    config = tiny(lr_decay_at=(0.3, 0.6))
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown training settings: colour"):
        TrainConfig.from_dict({**config.to_dict(), "colour": 1})


def test_auto_device_prefers_a_gpu_and_a_missing_cuda_is_refused():
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            pick_device("cuda")


@pytest.mark.parametrize("damage_every", [0, 1])
def test_damage_every_erases_a_circle_in_one_grid_of_the_batch(pebbles_64, damage_every):
    """The untrained rule changes nothing, so the pool gets back exactly what the rollout started from."""
    trainer = Trainer(pebbles_64, tiny(batch=4, damage_every=damage_every))
    trainer.pool.fill_(0.5)  # as if every grid were grown
    trainer.train_step()  # iteration 0: one grid of the batch is also re-seeded (all zero)
    erased = (trainer.pool == 0).all(dim=1).flatten(1).float().mean(dim=1)  # per grid: share of empty cells
    holes = [share for share in erased.tolist() if 0 < share < 1]
    assert (erased == 1).sum() == 1  # the re-seeded grid
    if damage_every:
        assert len(holes) == 1 and holes[0] == pytest.approx(3.1416 * 0.25**2, abs=0.02)  # a circle of radius 1/4
    else:
        assert holes == []


@pytest.mark.slow
def test_short_training_learns_the_real_texture(pebbles_64):
    """The loss of a grown texture falls, and its statistics move towards the target's."""
    config = tiny(iters=60, lr=2e-3, lr_decay_at=(0.7,), steps_min=16, steps_max=32)
    previews = []
    result = train(pebbles_64, config, callback=lambda p: previews.append(p.preview) if p.preview else None, log=lambda m: None)
    assert len(result.history) == 60 and result.loss_name == "patch"
    assert previews and previews[-1].size == (4 * 32, 32)

    untrained = Trainer(pebbles_64, tiny(), log=lambda m: None).model

    def grown(model):
        return torch.from_numpy(grow(model, size=64, steps=48, every=48).final).permute(2, 0, 1)[None] / 255.0

    def loss_of(image):
        torch.manual_seed(0)
        return PatchLoss(pebbles_64)(image).item()

    assert loss_of(grown(result.model)) < 0.5 * loss_of(grown(untrained))
    trained_score, untrained_score = score(grown(result.model), pebbles_64), score(grown(untrained), pebbles_64)
    assert trained_score.combined < 0.5 * untrained_score.combined, (trained_score, untrained_score)
    assert trained_score.colour < untrained_score.colour and trained_score.spectrum < untrained_score.spectrum


def test_same_seed_same_model(pebbles_64):
    a = train(pebbles_64, tiny(seed=5), log=lambda m: None).model
    b = train(pebbles_64, tiny(seed=5), log=lambda m: None).model
    c = train(pebbles_64, tiny(seed=6), log=lambda m: None).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_stop_keeps_the_model_trained_so_far(pebbles_64):
    seen = []
    trainer = Trainer(pebbles_64, tiny(iters=50), log=lambda m: None)
    result = trainer.train(callback=lambda p: seen.append(p.iteration), should_stop=lambda: len(seen) >= 3)
    assert result.stopped and result.iteration == 3
    assert trainer.model.w2.weight.abs().sum() > 0  # it learned something and kept it


@pytest.mark.parametrize("perception", ["sobel", "isotropic"])
def test_resume_continues_exactly_where_it_stopped(pebbles_64, tmp_path, perception):
    straight = train(pebbles_64, tiny(iters=6, perception=perception), log=lambda m: None).model

    first = Trainer(pebbles_64, tiny(iters=6, perception=perception), log=lambda m: None)
    first.train(should_stop=lambda: first.iteration >= 3)
    first.save(tmp_path, pebbles_64)
    assert (tmp_path / "target.png").exists() and (tmp_path / "training.json").exists()
    resumed = Trainer.resume(tmp_path, pebbles_64, log=lambda m: None)
    assert resumed.iteration == 3 and resumed.model.perception == perception
    result = resumed.train()
    assert result.iteration == 6 and len(result.history) == 6
    for p, q in zip(straight.parameters(), resumed.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_resume_without_a_checkpoint_is_a_clear_error(pebbles_64, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        Trainer.resume(tmp_path, pebbles_64, log=lambda m: None)


@pytest.mark.slow
def test_nan_rolls_back_to_the_last_good_model_and_never_saves_garbage(pebbles_64, tmp_path):
    trainer = Trainer(pebbles_64, tiny(iters=20), log=lambda m: None)
    trainer.train(should_stop=lambda: trainer.iteration >= 10)
    good = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.pool[:] = float("inf")  # every sample now overflows to inf/NaN
    losses = trainer.train_step()
    assert losses["rolled_back"] and trainer.rollbacks == 1
    assert all(torch.equal(good[k], v) for k, v in trainer.model.state_dict().items())
    assert torch.isfinite(trainer.pool).all()  # the poisoned pool was cleared
    result = trainer.train()  # and training goes on
    assert result.iteration == 20
    trainer.save(tmp_path)
    assert all(torch.isfinite(p).all() for p in load_folder(tmp_path).parameters())


def test_bfloat16_rollouts_train_like_float32_ones_and_say_so(pebbles_64, tmp_path):
    """Autocast really changes the rollout's arithmetic, not what is learnt: one iteration's loss within a few percent."""
    def one_iteration(precision: str) -> tuple[Trainer, float]:
        trainer = Trainer(pebbles_64, tiny(precision=precision, seed=3), log=lambda m: None)
        torch.nn.init.normal_(trainer.model.w2.weight, std=0.02)
        return trainer, trainer.train_step()["texture"]

    (exact, exact_loss), (fast, fast_loss) = one_iteration("float32"), one_iteration("bfloat16")
    assert (exact.compute_dtype, fast.compute_dtype) == (None, torch.bfloat16)
    assert fast_loss != exact_loss and fast_loss == pytest.approx(exact_loss, rel=0.05)
    assert all(p.dtype == torch.float32 for p in fast.model.parameters())
    fast.save(tmp_path)
    assert json.loads((tmp_path / "training.json").read_text())["precision"] == "bfloat16"


def test_auto_precision_trains_in_bfloat16_on_cuda_only():
    from nca_gradio.precision import training_dtype

    assert training_dtype("cpu", "auto") is None  # even with bfloat16 units: it trained worse textures there
    assert training_dtype("cpu", "bfloat16") == torch.bfloat16
    assert training_dtype("cuda", "auto") == torch.bfloat16
    assert training_dtype("cuda", "float32") is None


def test_gradient_checkpointing_gives_the_same_gradients(pebbles_64):
    def grads(checkpointing: bool):
        trainer = Trainer(pebbles_64, tiny(grad_checkpoint=checkpointing, seed=2), log=lambda m: None)
        torch.nn.init.normal_(trainer.model.w2.weight, std=0.02)
        x = torch.randn(2, trainer.model.channels, 32, 32) * 0.1
        out = trainer.rollout(x, 12)
        out.square().mean().backward()
        return [p.grad.clone() for p in trainer.model.parameters()]

    for a, b in zip(grads(False), grads(True)):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_diverged_sample_goes_back_to_the_pool_as_an_empty_grid(pebbles_64):
    trainer = Trainer(pebbles_64, tiny(pool_size=2, batch=2))
    with torch.no_grad():
        trainer.model.w2.weight.fill_(0.5)  # every step adds a lot: the states run away
    trainer.train_step()
    assert torch.isfinite(trainer.pool).all()
    assert trainer.pool.abs().amax() <= RUNAWAY_BOUND  # the runaways were reset, not stored


def test_reset_runaways_keeps_samples_within_bounds():
    x = torch.zeros(3, 4, 8, 8)
    x[0] = 0.9
    x[1, 2, 3, 3] = RUNAWAY_BOUND + 1.0
    x[2] = -0.5
    kept = reset_runaways(x)
    assert torch.equal(kept[0], x[0]) and torch.equal(kept[2], x[2])
    assert kept[1].abs().sum() == 0


@pytest.mark.slow
def test_a_run_that_blows_up_keeps_and_saves_only_a_model_that_grows(pebbles_64, tmp_path):
    """At lr 1.0 the weights stay finite for a while but the rollout already blows up: such weights are never "last good"."""
    trainer = Trainer(pebbles_64, tiny(iters=40, lr=1.0, pool_size=16), log=lambda m: None)
    try:
        trainer.train()
    except FloatingPointError:
        pass
    trainer.save(tmp_path, pebbles_64)
    state = grow(load_folder(tmp_path), size=64, steps=200, every=200, precision="float32").state
    assert torch.isfinite(state).all()
