"""`nca export` and the live model JSON: the schema rebuilds the very model, and bad requests get one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line_error, run_main

from nca_gradio import live
from nca_gradio.model import NCA, PERCEPTIONS, NCAConfig
from nca_gradio.model_folder import load_folder

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out

ROOT = Path(__file__).resolve().parent.parent
PEBBLES = ROOT / "models" / "pebbles"


def nca(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nca_gradio.cli", *args], check=False, capture_output=True, text=True, env=env, timeout=120)


def model_from_json(data: dict) -> NCA:
    """Rebuild an NCA from the documented schema alone (as another runtime would read it)."""
    model = NCA(NCAConfig(channels=data["channels"], hidden=data["hidden"], fire_rate=data["fire_rate"], perception=data["perception"]))
    with torch.no_grad():
        model.w1.weight.copy_(torch.tensor(data["w1"]).view_as(model.w1.weight))
        model.w1.bias.copy_(torch.tensor(data["b1"]))
        model.w2.weight.copy_(torch.tensor(data["w2"]).view_as(model.w2.weight))
    return model


def test_json_export_holds_the_exact_weights(tmp_path):
    result = nca("export", str(PEBBLES), "-o", str(tmp_path / "pebbles.json"))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "pebbles.json").read_text())
    original = load_folder(PEBBLES)
    assert (data["format"], data["version"], data["name"]) == (live.SCHEMA, live.SCHEMA_VERSION, "pebbles")
    assert data["kernels"] == [[list(r) for r in k] for k in PERCEPTIONS[original.perception]]
    rebuilt = model_from_json(data)
    for name, tensor in original.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), f"{name} does not round-trip through JSON"


def test_html_export_is_self_contained(tmp_path):
    result = nca("export", str(PEBBLES), "-o", str(tmp_path / "texture.html"))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "texture.html").read_text()
    assert "NCALive.mount" in page and '"w1":' in page and "u_fire_rate" in page
    assert "<script src" not in page and "http://" not in page and "https://" not in page  # nothing to fetch


def test_glsl_export_writes_shaders_for_this_model(tmp_path):
    out = tmp_path / "shaders"
    result = nca("export", str(ROOT / "models" / "hubble_dots"), "-o", str(out), "--format", "glsl")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([*live.SHADER_FILES, "model.json", live.RUNTIME_FILE])
    step = (out / "step.frag").read_text()
    assert step.startswith("#version 300 es\n#define STATE_LAYERS 3\n#define KERNELS 3\n#define HIDDEN_GROUPS 24\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "100"], "the live canvas size must be auto or one of 64, 128, 256, 512, 768, 1024 cells, got 100"),
        (["--format", "glsl"], "is a file, not a folder"),
    ],
)
def test_bad_export_requests_get_one_line(tmp_path, args, message):
    target = tmp_path / "texture.html"
    target.write_text("keep me")
    result = nca("export", str(PEBBLES), "-o", str(target), *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert target.read_text() == "keep me"


def test_graft_export_holds_both_rules(tmp_path):
    out = tmp_path / "graft.html"
    written = live.export(load_folder(PEBBLES), out, name="pebbles", graft=load_folder(ROOT / "models" / "hubble_dots"), graft_name="hubble_dots")
    assert written == [out]
    page = out.read_text()
    assert page.count('"w1":') == 2 and '"mask":{"width":256,"height":256' in page and "<b>hubble_dots</b>" in page


@pytest.mark.parametrize("where", [["--split", "circle"], ["--mask", "{tmp}/mask.png"]])
def test_a_graft_page_starts_from_the_split_or_mask_asked_for(tmp_path, capsys, where):
    from PIL import Image

    from nca_gradio.graft import image_mask

    Image.fromarray(np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))).save(tmp_path / "mask.png")  # a ramp, A to B
    where = [w.format(tmp=tmp_path) for w in where]
    out = tmp_path / "graft.html"
    code, _ = run_main(capsys, "export", PEBBLES, "--graft", ROOT / "models" / "coffee_beans", *where, "-o", out, "--size", "64")
    assert code == 0
    expected = live.mask_json("circle" if where[0] == "--split" else image_mask(where[1], 64, 64), 64)
    assert f'"levels":"{expected["levels"]}"' in out.read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["-o", "{tmp}/texture.html", "--split", "circle", "--no-graft"], ["--split and --mask", "--graft B"]),
        (["-o", "{tmp}/texture.html", "--mask", "{tmp}/missing.png"], ["missing.png"]),
        (["-o", "{tmp}/texture.json"], ["--graft", "html page only", "not json"]),
        (["-o", "{tmp}/shaders", "--format", "glsl"], ["--graft", "html page only", "not glsl"]),
        (["-o", "{tmp}/texture.html", "--graft", "{tmp}/missing"], ["missing"]),
    ],
)
def test_bad_graft_requests_get_one_line(tmp_path, capsys, args, words):
    args = [a.format(tmp=tmp_path) for a in args]
    graft = [] if "--graft" in args else ["--graft", ROOT / "models" / "coffee_beans"]
    if "--no-graft" in args:
        args, graft = [a for a in args if a != "--no-graft"], []
    one_line_error(run_main(capsys, "export", PEBBLES, *graft, *args), *words)
    assert not list(tmp_path.iterdir()), "a refused export wrote something"
