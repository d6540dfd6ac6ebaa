"""`nca export --format shadertoy` without a browser: the files it writes, what the code reads, and one-line refusals.
(tests/test_shadertoy_browser.py runs the code and holds it to PyTorch.)"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from helpers import one_line_error, run_main

from nca_gradio import live, shadertoy
from nca_gradio.model import NCA, NCAConfig
from nca_gradio.model_folder import load_folder
from nca_gradio.render import RenderError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # loading a model probes it: many threads crawl on shared cores

PEBBLES = ROOT / "models" / "pebbles"


def test_the_command_writes_the_three_files(tmp_path, capsys):
    out = tmp_path / "shadertoy"
    code, err = run_main(capsys, "export", PEBBLES, "-o", out, "--format", "shadertoy")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(shadertoy.FILES)
    buffer_a, image, steps = ((out / name).read_text() for name in shadertoy.FILES)
    assert f"#define GRID {shadertoy.DEFAULT_SIZE}\n#define LAYERS 3\n" in buffer_a and "#define LAYERS 3" in image
    assert "void mainImage(out vec4 state, in vec2 fragCoord)" in buffer_a and "void mainImage(out vec4 color" in image
    assert "pebbles" in buffer_a.splitlines()[0] and "pebbles" in steps
    for words in ("image.glsl", "buffer_a.glsl", "Buffer A", "iChannel0", "384x128"):
        assert words in steps, words


def test_the_code_is_small_and_reads_nothing_but_buffer_a(tmp_path):
    """The weights are constants in the code: no uniforms, textures or other channels to set up; ASCII only (WebGL)."""
    live.export(load_folder(PEBBLES), tmp_path, "shadertoy")
    for name in ("buffer_a.glsl", "image.glsl"):
        code = (tmp_path / name).read_text()
        assert code.isascii()
        assert re.findall(r"iChannel\d", code) and set(re.findall(r"iChannel\d", code)) == {"iChannel0"}
        assert "uniform" not in code and "sampler" not in code and "texture(" not in code
        assert code.count("texelFetch(") == 1  # one read of the state: cellAt in Buffer A, the picture in Image
    size = (tmp_path / "buffer_a.glsl").stat().st_size
    assert 30_000 < size < 48_000, f"buffer_a.glsl of a 12-channel, 96-hidden model is {size} bytes"
    assert (tmp_path / "buffer_a.glsl").read_text().count("mat4(") == 24 * 12 + 24 * 3  # w1 and w2 blocks, four by four


def test_every_weight_is_written_within_half_a_step():
    """Each tensor is written as integers of at most DIGITS digits times one step, every weight off by at most half a
    step: summed over a tensor, the written magnitudes stay within half a step a weight of the model's."""
    data = live.model_json(load_folder(PEBBLES))
    code = shadertoy.buffer_a(data, live.shader_sources()["step.frag"], 64)
    written = {  # the integers in the w1 blocks (times a perception), the biases, the w2 blocks (times h)
        "w1": re.findall(r"mat4\(([-\d,]+)\) \* p", code),
        "b1": re.findall(r"vec4\(([-\d,]+)\) \+", code),
        "w2": re.findall(r"mat4\(([-\d,]+)\) \* h", code),
    }
    for key, blocks in written.items():
        numbers = [int(n) for block in blocks for n in block.split(",")]
        weights = torch.as_tensor(data[key]).flatten()
        step = 10.0 ** shadertoy.exponent(data[key], shadertoy.DIGITS)
        assert max(map(abs, numbers)) < 10**shadertoy.DIGITS and sum(n != 0 for n in numbers) <= weights.numel(), key
        error = abs(sum(map(abs, numbers)) * step - weights.abs().sum().item())
        assert error <= weights.numel() * step / 2, f"{key}: the written weights add up {error:.4f} away"


@pytest.mark.parametrize("size", [64, 256])
def test_the_size_sets_the_grid(tmp_path, capsys, size):
    code, err = run_main(capsys, "export", PEBBLES, "-o", tmp_path, "--format", "shadertoy", "--size", size)
    assert code == 0, err
    assert f"#define GRID {size}\n" in (tmp_path / "image.glsl").read_text()
    assert f"{size / 16:g}. * {size / 16:g}." in (tmp_path / "buffer_a.glsl").read_text()  # the eraser: N/16 cells


def test_bad_requests_are_one_line(tmp_path, capsys, unwritable):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    refusals = [
        ([afile], "is a file, not a folder"),
        ([afile / "sub"], "is a file, not a folder"),
        ([""], "the output path is empty"),
        ([unwritable / "x"], "cannot write in"),
        ([tmp_path / "ok", "--size", "100"], "the live canvas size must be auto or one of 64, 128, 256, 512, 768, 1024"),
        ([tmp_path / "ok", "--size", "-5"], "got -5"),
    ]
    for (out, *rest), words in refusals:
        one_line_error(run_main(capsys, "export", PEBBLES, "--format", "shadertoy", "-o", out, *rest), words)
    assert afile.read_text() == "mine" and not (tmp_path / "ok").exists()


def test_a_weight_that_is_not_a_number_is_refused_in_one_line(tmp_path):
    model = NCA(NCAConfig(channels=4, hidden=8))
    with torch.no_grad():
        model.w2.weight[0, 0] = math.nan
    with pytest.raises(RenderError, match="Shadertoy code needs finite numbers"):
        live.export(model, tmp_path / "out", "shadertoy")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_numbers_are_short_glsl_literals():
    assert [shadertoy.literal(v) for v in (0.5, -0.25, 2.0, 0.0, -12.0, 1e-5)] == [".5", "-.25", "2.", "0.", "-12.", "1e-05"]
    assert shadertoy.exponent([[0.2822, -0.01], [0.0]], 4) == -4 and shadertoy.exponent([0.0], 4) == 0


def test_a_new_model_still_exports(tmp_path):
    """A model fresh from its constructor has an all-zero last layer: its code adds zero updates, and still compiles
    as far as text can tell (every mat4 has 16 numbers)."""
    live.export(NCA(NCAConfig(channels=3, hidden=1)), tmp_path, "shadertoy", size=64)
    code = Path(tmp_path / "buffer_a.glsl").read_text()
    assert all(len(m.split(",")) == 16 for m in re.findall(r"mat4\(([^)]*)\)", code))
    assert "#define LAYERS 1" in code and "state = cellAt(cell, t) + (coin < .5 ? 1e0 * (u0) : vec4(0));" in code
