"""Every fast path (`nca_gradio.fast`) computes what the reference `NCA` computes, within float rounding, on CPU and on CUDA.

The fast paths: perception folded into w1 as one dense 3x3 convolution in
channels-last, the fused masked add, masks drawn in one call, chunked and
checkpointed rollouts, the one-sync NaN guard, torch.compile with its
fallback, and the CUDA-graph `Grower`. No test here times anything.
"""

import os
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from reference import rollout

from nca_gradio import fast
from nca_gradio.fast import Grower, apply_steps, circular_pad, compile_steps
from nca_gradio.model import NCA, PERCEPTIONS, PRESETS, cell_mask, draw_masks
from nca_gradio.train import Trainer

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def trained_like(name: str = "texture", device: str = "cpu", seed: int = 0, perception: str = "sobel") -> NCA:
    torch.manual_seed(seed)
    model = NCA(replace(PRESETS[name], perception=perception)).to(device)
    torch.nn.init.normal_(model.w2.weight, std=0.05)
    torch.nn.init.normal_(model.w1.bias, std=0.05)
    return model


def close_to_scale(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    """Equal up to `tol` of b's largest entry: gradients summed in another order differ by rounding at their scale."""
    return bool((a - b).abs().max() <= tol * b.abs().max().clamp_min(1e-12))


def reference_update(model: NCA, x: torch.Tensor) -> torch.Tensor:
    """The textbook formula the fused path must equal: w2(relu(w1(perceive(x))))."""
    return model.update(x)


@pytest.fixture
def strict_cuda_math():
    """TF32 off while comparing on CUDA, so a tight tolerance tests the algebra, not TF32 rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 17, 9)])
@pytest.mark.parametrize("perception", list(PERCEPTIONS))
def test_fused_update_equals_the_textbook_formula(name, shape, perception, device, strict_cuda_math):
    model = trained_like(name, device, perception=perception)
    batch, h, w = shape
    x = torch.randn(batch, model.channels, h, w, device=device) * 0.5
    with torch.no_grad():
        fused, plain = fast.update(model, x), reference_update(model, x)
    assert fused.shape == plain.shape
    assert torch.allclose(fused, plain, atol=1e-5, rtol=1e-4), (fused - plain).abs().max()


@pytest.mark.parametrize("device", DEVICES)
def test_fused_update_has_the_same_gradients(device, strict_cuda_math):
    model = trained_like("fast", device)
    x = (torch.randn(2, model.channels, 12, 10, device=device) * 0.5).requires_grad_()

    def grads(fn):
        model.zero_grad()
        x.grad = None
        fn(model, x).square().sum().backward()
        return [x.grad.clone()] + [p.grad.clone() for p in model.parameters()]

    fused = grads(fast.update)
    slow = grads(reference_update)
    for a, b in zip(fused, slow):
        assert close_to_scale(a, b, 1e-5), (a - b).abs().max()


def test_circular_pad_is_f_pad_circular_and_keeps_channels_last():
    x = torch.randn(2, 5, 7, 6).contiguous(memory_format=torch.channels_last)
    padded = circular_pad(x)
    assert torch.equal(padded, F.pad(x, (1, 1, 1, 1), mode="circular"))
    assert padded.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device", DEVICES)
def test_step_is_the_masked_add_and_returns_channels_last(device, strict_cuda_math):
    model = trained_like("texture", device)
    x = torch.randn(2, model.channels, 16, 16, device=device)  # plain NCHW in
    mask = cell_mask(x, 0.5, torch.Generator(device).manual_seed(0))
    with torch.no_grad():
        out = fast.step(model, x, mask)
        expected = x + reference_update(model, x) * mask
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-4)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fast.step(model, x, torch.zeros_like(mask)), x)  # cells that do not fire stay exactly put


def test_one_draw_of_masks_is_the_per_step_draws_on_cpu():
    x = torch.zeros(3, 6, 21, 13)
    one = draw_masks(x, 5, 0.5, torch.Generator().manual_seed(9))
    generator = torch.Generator().manual_seed(9)
    per_step = torch.stack([cell_mask(x, 0.5, generator) for _ in range(5)])
    assert torch.equal(one, per_step)


def test_grower_reproduces_the_step_loop_on_cpu():
    """Chunks of masks drawn one chunk at a time: the very masks, and so the very numbers, of one draw for all steps."""
    model = trained_like("texture")
    x = model.empty_grid(1, 24)
    with torch.no_grad():
        expected = apply_steps(model, x, draw_masks(x, 40, model.fire_rate, torch.Generator().manual_seed(3)))
    grower = Grower(model, chunk=16)
    got = grower.run(x, 40, torch.Generator().manual_seed(3))
    assert grower.path == "eager"
    assert torch.equal(got, expected) and got.abs().sum() > 0


def _rollout_and_grads(trainer: Trainer, x: torch.Tensor, steps: int, seed: int):
    trainer.mask_generator.manual_seed(seed)
    trainer.model.zero_grad()
    out = trainer.rollout(x, steps)
    out.square().mean().backward()
    return out.detach(), [p.grad.clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_trainer_rollout_is_the_plain_step_loop(pebbles_64, checkpointing, tiny_config):
    """Chunked (and checkpointed, with its short segments) rollout == one model.step per mask, odd lengths included."""
    config = tiny_config(size=16, steps_min=4, steps_max=21, grad_checkpoint=checkpointing)
    trainer = Trainer(pebbles_64, config, log=lambda m: None)
    torch.nn.init.normal_(trainer.model.w2.weight, std=0.05)
    x = torch.randn(2, trainer.model.channels, 16, 16) * 0.1
    out, grads = _rollout_and_grads(trainer, x, 21, seed=4)

    masks = draw_masks(x, 21, config.fire_rate, torch.Generator().manual_seed(4))
    trainer.model.zero_grad()
    plain = x
    for mask in masks:
        plain = fast.step(trainer.model, plain, mask)
    plain.square().mean().backward()
    assert torch.allclose(out, plain.detach(), atol=1e-6)
    for a, p in zip(grads, trainer.model.parameters()):
        assert close_to_scale(a, p.grad, 1e-5)


def test_one_sync_guard_still_rolls_back_a_nan_gradient_under_a_finite_loss(pebbles_64, tiny_config):
    """sqrt(|d|) at d = 0 has the value 0 and the gradient NaN: only the gradient check can see it."""
    config = tiny_config(size=16, steps_min=2, steps_max=3, iters=5)
    trainer = Trainer(pebbles_64, config, log=lambda m: None)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.parts.loss_fn = lambda img: (img - img.detach()).abs().sqrt().flatten(1).sum(1)
    losses = trainer.train_step()
    assert losses["rolled_back"] and trainer.rollbacks == 1
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert all(p.grad is None for p in trainer.model.parameters())


def test_compile_falls_back_to_the_plain_loop_when_the_compiler_fails(monkeypatch):
    model = trained_like("seed")
    x = torch.randn(1, model.channels, 8, 8) * 0.1
    masks = draw_masks(x, 3, 0.5, torch.Generator().manual_seed(0))
    expected = apply_steps(model, x, masks)
    messages = []

    def broken_compile(*args, **kwargs):
        raise RuntimeError("no compiler on this host")

    monkeypatch.setattr(torch, "compile", broken_compile)
    fn, compiled = compile_steps(model, log=messages.append)
    assert not compiled and messages and torch.equal(fn(x, masks), expected)

    def fails_when_called(*args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("backend exploded at the first call")
        return run

    monkeypatch.setattr(torch, "compile", fails_when_called)
    messages.clear()
    fn, compiled = compile_steps(model, log=messages.append)
    assert compiled  # the probe was skipped, so the failure shows only at the call...
    assert torch.equal(fn(x, masks), expected) and messages  # ...which falls back, and says so
    assert torch.equal(fn(x, masks), expected)


@pytest.mark.slow
def test_a_failing_probe_means_the_plain_loop():
    model = trained_like("seed")

    def probe(fn):
        raise RuntimeError("backward did not compile")

    _, compiled = compile_steps(model, probe=probe, log=lambda m: None)
    assert not compiled


@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cpu", marks=pytest.mark.skipif(not os.environ.get("NCA_TEST_COMPILE"),
                                                     reason="compiling on a CPU takes minutes; set NCA_TEST_COMPILE=1")),
        pytest.param("cuda", marks=pytest.mark.gpu),
    ],
)
def test_compiled_steps_match_the_plain_loop(device, strict_cuda_math):
    model = trained_like("texture", device)
    x = torch.randn(2, model.channels, 16, 16, device=device) * 0.1
    masks = draw_masks(x, 4, 0.5, torch.Generator(device).manual_seed(0))
    fn, compiled = compile_steps(model, log=lambda m: None)
    assert compiled
    out = fn(x, masks)
    out.square().mean().backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    plain = apply_steps(model, x, masks)
    plain.square().mean().backward()
    assert torch.allclose(out, plain, atol=1e-5, rtol=1e-4)
    for a, p in zip(compiled_grads, model.parameters()):
        assert close_to_scale(a, p.grad, 1e-4)


@pytest.mark.skipif(not os.environ.get("NCA_TEST_COMPILE"), reason="compiling on a CPU takes minutes; set NCA_TEST_COMPILE=1")
def test_compiled_grower_reproduces_the_plain_rollout_on_cpu():
    model = trained_like("texture")
    x = model.empty_grid(1, 24)
    expected = rollout(model, x, 20, torch.Generator().manual_seed(3))
    grower = Grower(model, chunk=10, unit=4, compile=True, log=lambda m: None)
    got = grower.run(x, 20, torch.Generator().manual_seed(3))  # 4 + 4 compiled, a tail of 2 plain, per chunk
    assert grower.path == "torch.compile"
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_graph_grower_matches_eager_stepping(compile, strict_cuda_math):
    model = trained_like("texture", "cuda")
    x = torch.randn(1, model.channels, 64, 64, device="cuda") * 0.1
    eager = Grower(model, chunk=16, cuda_graph=False).run(x, 40, torch.Generator("cuda").manual_seed(5))
    grower = Grower(model, chunk=16, compile=compile)
    got = grower.run(x, 40, torch.Generator("cuda").manual_seed(5))
    assert "cuda graph" in grower.path
    assert torch.allclose(got, eager, atol=1e-5, rtol=1e-4), (got - eager).abs().max()
    again = grower.run(x, 40, torch.Generator("cuda").manual_seed(5))  # the graph is replayed, not re-recorded
    assert torch.equal(again, got)


@pytest.mark.gpu
def test_compiled_trainer_rollout_matches_the_plain_one(pebbles_64, strict_cuda_math, tiny_config):
    config = tiny_config(steps_min=8, steps_max=20, device="cuda")
    plain = Trainer(pebbles_64, config, log=lambda m: None)
    fast = Trainer(pebbles_64, config, log=lambda m: None)
    fast.compile = True
    torch.nn.init.normal_(plain.model.w2.weight, std=0.05)
    fast.model.load_state_dict(plain.model.state_dict())
    x = torch.randn(2, plain.model.channels, 32, 32, device="cuda") * 0.1
    out_plain, grads_plain = _rollout_and_grads(plain, x, 19, seed=2)
    out_fast, grads_fast = _rollout_and_grads(fast, x, 19, seed=2)
    assert torch.allclose(out_fast, out_plain, atol=1e-5, rtol=1e-4)
    for a, b in zip(grads_fast, grads_plain):
        assert close_to_scale(a, b, 1e-4)


@pytest.mark.gpu
def test_run_on_cuda_replays_graphs_between_frames_and_events(strict_cuda_math):
    """render.run cuts the rollout at frames and before events, and replays a recorded chunk for each full one."""
    from nca_gradio.render import Damage, apply_damage, run

    model = trained_like("texture", "cuda")
    x = torch.randn(1, model.channels, 48, 48, device="cuda") * 0.1
    damage = Damage(size=0.3)
    got = run(model, x, 30, every=4, seed=7, events={11: lambda s: apply_damage(s, damage)})
    assert got.path == "cuda graph"
    assert got.steps == [0, 4, 8, 12, 16, 20, 24, 28, 30]
    generator, eager, expected = torch.Generator("cuda").manual_seed(7), Grower(model, chunk=4, cuda_graph=False), x
    for n in (4, 4, 2, "damage", 2, 4, 4, 4, 4, 2):  # the damage is due before step 11
        expected = apply_damage(expected, damage) if n == "damage" else eager.run(expected, n, generator)
    assert torch.allclose(got.state, expected, atol=1e-5, rtol=1e-4), (got.state - expected).abs().max()


@pytest.mark.gpu
def test_compiled_training_with_cuda_graphs_follows_the_plain_run(pebbles_64, tiny_config):
    """Whole iterations (bfloat16 autocast, Adam, pool writes) with graphed chunks: same losses and weights, to rounding.

    A graph output reused after a later replay overwrote it would show here as a jump, not as rounding.
    """
    config = tiny_config(steps_min=16, steps_max=28, device="cuda")
    runs = {}
    for compiled in (False, True):
        trainer = Trainer(pebbles_64, config, log=lambda m: None)  # seeds every generator the same way
        trainer.compile = compiled
        runs[compiled] = (trainer, [trainer.train_step()["loss"] for _ in range(3)])  # later, bfloat16 chaos
    (plain, plain_losses), (fast, fast_losses) = runs[False], runs[True]
    assert fast.rollout.compiled
    assert fast_losses == pytest.approx(plain_losses, rel=2e-2)
    for a, b in zip(fast.model.parameters(), plain.model.parameters()):
        assert close_to_scale(a, b, 5e-2)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("perception", list(PERCEPTIONS))
def test_bfloat16_update_equals_the_float32_one_within_bfloat16_rounding(name, perception):
    model = trained_like(name, perception=perception)
    x = torch.randn(2, model.channels, 24, 24) * 0.5
    with torch.no_grad():
        plain = fast.update(model, x)
        mixed = fast.update(model, x, fast.step_weights(model, torch.bfloat16))
    assert mixed.dtype == torch.float32  # the state stays float32: rounding does not pile up
    assert close_to_scale(mixed, plain, 3e-2)


def test_float32_run_is_exactly_the_fast_step_loop_and_the_reference_to_rounding():
    from nca_gradio.render import run

    model = trained_like("fast")
    x = torch.randn(1, model.channels, 20, 20) * 0.3
    with torch.no_grad():
        stepped = apply_steps(model, x, draw_masks(x, 10, model.fire_rate, torch.Generator().manual_seed(3)))
        reference = rollout(model, x, 10, torch.Generator().manual_seed(3))
    state = run(model, x, 10, every=10, seed=3, precision="float32").state
    assert torch.equal(state, stepped)
    assert torch.allclose(state, reference, atol=1e-5) and not torch.equal(state, x)


def test_precision_choice():
    from nca_gradio.precision import inference_dtype

    texture, seed = NCA(PRESETS["texture"]), NCA(PRESETS["seed"])
    assert inference_dtype(texture, "cpu", "float32") is None
    assert inference_dtype(texture, "cpu", "bfloat16") is torch.bfloat16
    assert inference_dtype(texture, "meta", "auto") is None  # only CPUs with bfloat16 units take it by default
    assert inference_dtype(seed, "cpu", "auto") is None  # too small to gain from it
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        inference_dtype(texture, "cpu", "half")


@pytest.mark.slow
def test_bfloat16_grows_the_same_texture_as_float32():
    """Over hundreds of steps the two rollouts part ways cell by cell, but not in what they look like."""
    from pathlib import Path

    from nca_gradio.images import load_target
    from nca_gradio.loading import load_model
    from nca_gradio.model import to_rgb
    from nca_gradio.quality import score
    from nca_gradio.render import grow

    folder = min(p.parent for p in (Path(__file__).parents[1] / "models").glob("*/model.safetensors"))
    model, target = load_model(folder), load_target(folder / "target.png", 128)
    scores = {p: score(to_rgb(grow(model, 96, 384, every=384, precision=p).state), target).combined
              for p in ("float32", "bfloat16")}
    assert scores["bfloat16"] == pytest.approx(scores["float32"], rel=0.25), scores
