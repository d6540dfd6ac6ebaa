"""Renderers: growing, damage shapes, healing, and the GIF / MP4 / PNG outputs."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from nca_gradio import fast
from nca_gradio.model import NCA, NCAConfig, cell_mask
from nca_gradio.render import Damage, RenderError, apply_damage, grow, heal, run, save_animation, save_png


@pytest.fixture(scope="module")
def model() -> NCA:
    torch.manual_seed(0)
    m = NCA(NCAConfig(channels=6, hidden=16))
    torch.nn.init.normal_(m.w2.weight, std=0.05)
    return m


def test_grow_keeps_every_kth_frame_at_any_size(model):
    rollout = grow(model, size=48, steps=20, every=5, height=32)
    assert rollout.steps == [0, 5, 10, 15, 20]
    assert all(f.shape == (32, 48, 3) and f.dtype == np.uint8 for f in rollout.frames)
    assert rollout.state.shape == (1, 6, 32, 48)
    assert (rollout.frames[0] == 128).all()  # the empty grid is mid-grey
    assert not (rollout.frames[-1] == 128).all()


def test_grow_is_reproducible_with_a_seed(model):
    a, b = grow(model, 32, 10, seed=3), grow(model, 32, 10, seed=3)
    assert torch.equal(a.state, b.state)
    assert not torch.equal(a.state, grow(model, 32, 10, seed=4).state)


@pytest.mark.parametrize("shape", ["circle", "square", "stripe"])
def test_damage_shapes_erase_the_right_region(shape):
    mask = Damage(shape, x=0.5, y=0.5, size=0.25).mask(64, 64)[0, 0]
    assert mask[32, 32] == 1 and mask[2, 32] == 0
    erased = mask.sum().item()
    expected = {"circle": np.pi * 16**2, "square": 32**2, "stripe": 16 * 64}[shape]
    assert abs(erased - expected) / expected < 0.1
    if shape == "stripe":
        assert mask[32].all()


def test_damage_wraps_around_the_torus():
    mask = Damage("circle", x=0.0, y=0.0, size=0.1).mask(50, 50)[0, 0]
    assert mask[0, 0] == 1 and mask[49, 49] == 1 and mask[25, 25] == 0


def test_apply_damage_empties_the_cells():
    x = torch.ones(1, 4, 32, 32)
    damaged = apply_damage(x, Damage("square", 0.5, 0.5, 0.2))
    assert damaged[0, :, 16, 16].eq(0).all() and damaged[0, :, 0, 0].eq(1).all()


@pytest.mark.parametrize("kwargs, message", [({"shape": "star"}, "shape"), ({"x": 1.5}, "x must be"), ({"size": 0}, "size")])
def test_bad_damage_is_refused(kwargs, message):
    with pytest.raises(RenderError, match=message):
        Damage(**kwargs)


def test_heal_damages_at_the_chosen_step(model):
    damage = Damage("circle", 0.5, 0.5, 0.3)
    rollout = heal(model, damage, size=32, grow_steps=12, heal_steps=8, every=1)
    assert rollout.steps[-1] == 20
    before, after = rollout.frames[12], rollout.frames[13]
    # Right after the damage the centre is the empty grey again, then it regrows.
    assert np.abs(after[16, 16].astype(int) - 128).max() <= np.abs(before[16, 16].astype(int) - 128).max()
    assert not np.array_equal(before, after)


def test_run_applies_events_before_their_step_between_frames(model):
    """Frames every 3 steps, an event due mid-way: the same numbers as the fast step, one call at a time."""
    x = torch.randn(1, 6, 20, 20) * 0.3
    got = run(model, x, 11, every=3, seed=3, events={5: lambda s: s * 0.5}, precision="float32")
    generator, expected = torch.Generator().manual_seed(3), x
    with torch.no_grad():
        for step in range(1, 12):
            state = expected * 0.5 if step == 5 else expected
            expected = fast.step(model, state, cell_mask(state, model.fire_rate, generator))
    assert got.steps == [0, 3, 6, 9, 11]
    assert got.path == "eager"
    assert torch.equal(got.state, expected)


@pytest.mark.parametrize("kwargs, message", [({"size": 4}, "size must be"), ({"steps": 0}, "steps must be"), ({"every": 0}, "every must be")])
def test_bad_render_requests_are_refused(model, kwargs, message):
    with pytest.raises(RenderError, match=message):
        grow(model, **{"size": 32, "steps": 4, "every": 1, **kwargs})


def test_gif_mp4_and_png_outputs(model, tmp_path):
    rollout = grow(model, size=40, steps=12, every=3)
    gif = save_animation(rollout.frames, tmp_path / "grow.gif", fps=10)
    mp4 = save_animation(rollout.frames, tmp_path / "grow.mp4", fps=10)
    png = save_png(rollout.final, tmp_path / "final.png")
    assert iio.imread(gif).shape == (5, 40, 40, 3)
    video = iio.imread(mp4, plugin="pyav") if _has_pyav() else np.stack(list(iio.imiter(mp4)))
    assert video.shape[0] == 5 and video.shape[1:3] == (40, 40)
    assert Image.open(png).size == (40, 40)
    with pytest.raises(RenderError, match=".gif or .mp4"):
        save_animation(rollout.frames, tmp_path / "grow.avi")


def test_final_png_tiles_seamlessly(model):
    """The grid is a torus: shifting the start and the cell masks shifts the result exactly,
    so no cell is special and the edges of the PNG continue into each other."""
    torch.manual_seed(1)
    x = torch.randn(1, 6, 24, 24) * 0.1
    masks = [(torch.rand(1, 1, 24, 24) < 0.5).float() for _ in range(10)]
    shift = lambda t: torch.roll(t, shifts=(7, 11), dims=(-2, -1))
    a, b = x, shift(x)
    with torch.no_grad():
        for mask in masks:
            a, b = fast.step(model, a, mask), fast.step(model, b, shift(mask))
    assert torch.allclose(shift(a), b, atol=1e-5)


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def test_frames_beyond_the_memory_cap_are_refused_before_any_step(model):
    from nca_gradio.render import MAX_FRAME_BYTES, check_frame_memory, frames_kept

    assert frames_kept(12, 4) == 4 and frames_kept(13, 4) == 5 and len(grow(model, size=32, steps=13, every=4).frames) == 5
    check_frame_memory(256, 256, 100, 1)  # 101 frames of 196 kB
    with pytest.raises(RenderError, match=r"100,001 frames of 512x512 need 78,644 MB of memory, more than the 300 MB cap"):
        grow(model, size=512, steps=100_000, every=1)
    steps = 2000
    with pytest.raises(RenderError, match="keep one frame every") as refused:
        check_frame_memory(256, 256, steps, 1)
    every = int(str(refused.value).split("every ")[1].split()[0])
    check_frame_memory(256, 256, steps, every)  # the advice fits
    assert frames_kept(steps, every) * 3 * 256 * 256 <= MAX_FRAME_BYTES


def test_bad_outputs_are_refused_before_anything_is_written(model, tmp_path):
    from nca_gradio.atomic import SaveError

    rollout = grow(model, size=32, steps=8, every=4)
    video = save_animation(rollout.frames, tmp_path / "grow.mp4", fps=10)
    before = video.read_bytes()
    with pytest.raises(RenderError, match="frames of one size"):  # ffmpeg would have started on the old file
        save_animation([rollout.frames[0], np.zeros((48, 48, 3), np.uint8)], video, fps=10)
    assert video.read_bytes() == before
    with pytest.raises(SaveError, match="it is a folder"):
        save_png(rollout.final, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grow.mp4"]
    with pytest.raises(RenderError, match="seed must be"):
        grow(model, size=32, steps=4, seed=10**23)
