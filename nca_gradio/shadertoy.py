"""A model as Shadertoy code (`nca export --format shadertoy`): Buffer A steps the rule once a frame, Image shows it.

Shadertoy offers a pass one RGBA float buffer and no way to upload weights, so the weights are written into the
GLSL as `mat4` constants (four hidden units at a time, as `static/step.frag` packs them) and the state's layers
(four channels each) lie side by side: layer t of cell (x, y) is Buffer A's pixel (x + t * GRID, y), row y counted
from the top of the picture, as the live page keeps it. Each pixel computes its cell's whole hidden layer and keeps
its own layer's four channels. The input is the live-model JSON (`live.model_json`): this module needs that schema
and RenderError, nothing else of the package, so `live` can call it without an import loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from .render import RenderError

DEFAULT_SIZE = 128  # cells a side: a 12-channel model needs a 384 x 128 canvas, which Shadertoy's editor view holds
DIGITS = 4  # digits of each tensor's largest weight: 40 kB for a 12-channel model, within 0.001 of PyTorch (RESEARCH.md)
TOO_SMALL = "vec4(.5, .1, .4, 1)"  # the plain purple Image shows on a canvas too small for the grid
FILES = ("buffer_a.glsl", "image.glsl", "PASTE.txt")


def literal(value: float) -> str:
    """A GLSL float literal, as short as it can be written (.5, -.25, 12.), that reads back as the same float32."""
    if not math.isfinite(value):
        raise RenderError(f"the model holds a weight of {value}: Shadertoy code needs finite numbers")
    text = f"{value:.9g}"
    text = text if "e" in text or "." in text else text + "."
    return re.sub(r"^(-?)0\.(?=\d)", r"\1.", text)


def exponent(values: list, digits: int) -> int:
    """The power of ten whose multiples write the largest of `values` (nested lists) with `digits` digits.

    One step for a whole weight tensor: every weight becomes a small integer times it (off by at most half a
    step), so small weights cost few characters and the code stays short."""
    flat = _flatten(values)
    for value in flat:
        literal(value)  # refuse a NaN or an infinity in one line
    largest = max(map(abs, flat), default=0.0)
    return math.floor(math.log10(largest)) - digits + 1 if largest > 0 else 0


def _flatten(values: list | float) -> list[float]:
    return [x for v in values for x in _flatten(v)] if isinstance(values, list) else [values]


def _ints(values: Iterable[float], power: int) -> str:
    """The values in steps of 10**power, as GLSL integers (a vector or matrix constructor turns them into floats)."""
    return ",".join(str(round(v / 10**power)) for v in values)


def _mat4(value: Callable[[int, int], float], power: int) -> str:
    """mat4(...) of value(column, row) in steps of 10**power, column-major as GLSL's constructor takes it."""
    return f"mat4({_ints((value(q, r) for q in range(4) for r in range(4)), power)})"


def _kernel_sum(kernel: list[list[float]]) -> str:
    """One 3x3 kernel applied to the neighbourhood n[0..8] (row-major, as torch's conv2d cross-correlates)."""
    terms = []
    for tap, weight in enumerate(w for row in kernel for w in row):
        if weight:
            factor = "" if abs(weight) == 1 else literal(abs(weight)) + " * "
            terms.append(f"{'-' if weight < 0 else '+'} {factor}n[{tap}]")
    text = " ".join(terms) or "vec4(0)"
    return text.removeprefix("+ ")


def _prelude(model: dict, size: int, layers: int, part: str) -> str:
    """The lines both passes start with: what the shader is, the grid's layout and the pixel-to-cell mapping."""
    name = re.sub(r"[^A-Za-z0-9 ._+()-]", "_", model.get("name") or "")[:80]  # a comment: no newline, backslash or non-ASCII
    return f"""\
// {part}: nca-gradio{f', {name}' if name else ''}, a Neural Cellular Automaton ({model['channels']} channels, \
{model['hidden']} hidden units, {model['perception']} perception) on a {size}x{size} torus.
// Layer t (channels 4t..4t+3) of cell (x, y), row y from the top, is Buffer A's pixel (x + t*GRID, y).
// The canvas must be at least {layers * size}x{size} pixels: smaller, Image is plain purple and Buffer A stays empty.
#define GRID {size}
#define LAYERS {layers}

bool gridFits() {{ return iResolution.x >= float(LAYERS * GRID) && iResolution.y >= float(GRID); }}

// A canvas pixel's place on the grid, in cells (x = column, y = row from the top): the grid tiles the canvas
// at an integer zoom. Image draws with it and Buffer A erases under the mouse with it.
vec2 gridAt(vec2 pixel) {{
    float zoom = max(1., floor(iResolution.y / float(GRID)));
    return mod(vec2(pixel.x, iResolution.y - pixel.y) / zoom, float(GRID));
}}
"""


def _pcg(step_frag: str) -> str:
    """The live runtime's coin-flip hash (PCG3D), cut from `static/step.frag` so that both flip coins alike."""
    start = step_frag.index("// PCG3D")
    return step_frag[start:step_frag.index("\n}\n", start) + 3]


def buffer_a(model: dict, step_frag: str, size: int, digits: int = DIGITS) -> str:
    """Buffer A: empty at frame 0, then one step of the rule per frame, and a disc erased while the mouse is down."""
    channels, hidden, kernels = model["channels"], model["hidden"], model["kernels"]
    layers, groups, count = -(-channels // 4), -(-hidden // 4), len(kernels)
    w1, b1, w2 = model["w1"], model["b1"], model["w2"]
    e1, eb, e2 = (exponent(values, digits) for values in (w1, b1, w2))  # w1 and b1 in steps of 1e{e1}, 1e{eb}; w2 of 1e{e2}
    outs = ", ".join(f"out vec4 p{k}" for k in range(count))
    lines = [
        _prelude(model, size, layers, "Buffer A (iChannel0: Buffer A)"),
        _pcg(step_frag),
        "vec4 cellAt(ivec2 cell, int t) {  // layer t of a cell, wrapping around the torus",
        "    cell = (cell + GRID) % GRID;",
        "    return texelFetch(iChannel0, ivec2(cell.x + t * GRID, cell.y), 0);",
        "}\n",
        f"void perceive(ivec2 cell, int t, {outs}) {{  // the model's {count} 3x3 kernels on layer t",
        "    vec4 n[9];",
        "    for (int i = 0; i < 9; i++) n[i] = cellAt(cell + ivec2(i % 3 - 1, i / 3 - 1), t);",
        *(f"    p{k} = {_kernel_sum(kernel)};" for k, kernel in enumerate(kernels)),
        "}\n",
        "void mainImage(out vec4 state, in vec2 fragCoord) {",
        "    state = vec4(0);",
        "    ivec2 pixel = ivec2(fragCoord);",
        "    int t = pixel.x / GRID;",
        "    ivec2 cell = ivec2(pixel.x - t * GRID, pixel.y);",
        "    if (iFrame == 0 || !gridFits() || t >= LAYERS || cell.y >= GRID) return;  // the empty grid; zero outside it",
        "    if (iMouse.z > 0.) {  // button down: erase a disc around the cell under the mouse, on the torus",
        "        vec2 d = abs(vec2(cell) + .5 - gridAt(iMouse.xy));",
        "        d = min(d, float(GRID) - d);",
        f"        if (dot(d, d) < {literal(size / 16)} * {literal(size / 16)}) return;",
        "    }",
    ]
    for t in range(layers):
        names = ", ".join(f"p{k}_{t}" for k in range(count))
        lines.append(f"    vec4 {names};\n    perceive(cell, {t}, {names});")
    lines.append("    vec4 h, " + ", ".join(f"u{t} = vec4(0)" for t in range(layers)) + ";  // hidden units, 4 at a time; updates")

    def w1_at(g: int, k: int, t: int) -> Callable[[int, int], float]:  # column q: channel 4t + q; row r: hidden unit 4g + r
        return lambda q, r: w1[4 * g + r][(4 * t + q) * count + k] if 4 * g + r < hidden and 4 * t + q < channels else 0.0

    def w2_at(t: int, g: int) -> Callable[[int, int], float]:  # column q: hidden unit 4g + q; row r: channel 4t + r
        return lambda q, r: w2[4 * t + r][4 * g + q] if 4 * t + r < channels and 4 * g + q < hidden else 0.0

    for g in range(groups):
        bias = _ints((b1[4 * g + r] if 4 * g + r < hidden else 0.0 for r in range(4)), eb)
        terms = "\n        + ".join(f"{_mat4(w1_at(g, k, t), e1)} * p{k}_{t}" for k in range(count) for t in range(layers))
        lines.append(f"    h = max(1e{eb} * vec4({bias}) + 1e{e1} * (\n          {terms}), 0.);")
        lines += [f"    u{t} += {_mat4(w2_at(t, g), e2)} * h;" for t in range(layers)]
    pick = "".join(f"t == {t} ? u{t} : " for t in range(layers - 1)) + f"u{layers - 1}"
    lines += [
        "    // Each cell adds its whole update with probability fire_rate: one coin per cell and frame, all its layers alike.",
        "    float coin = float(pcg3d(uvec3(uvec2(cell), uint(iFrame))).x >> 8) / 16777216.;",
        f"    state = cellAt(cell, t) + (coin < {literal(model['fire_rate'])} ? 1e{e2} * ({pick}) : vec4(0));",
        "}\n",
    ]
    return "\n".join(lines)


def image(model: dict, size: int) -> str:
    """Image: the grid's first three channels around mid-grey (the repo's `to_rgb`), tiled over the canvas."""
    return _prelude(model, size, -(-model["channels"] // 4), "Image (iChannel0: Buffer A)") + f"""
void mainImage(out vec4 color, in vec2 fragCoord) {{
    if (!gridFits()) {{ color = {TOO_SMALL}; return; }}
    color = vec4(clamp(texelFetch(iChannel0, ivec2(gridAt(fragCoord)), 0).rgb + .5, 0., 1.), 1.);
}}
"""


def paste_steps(model: dict, size: int) -> str:
    """PASTE.txt: how to put the two files into a new Shadertoy shader."""
    width = -(-model["channels"] // 4) * size
    return f"""\
{model.get('name') or 'This model'} on Shadertoy: a Neural Cellular Automaton on a {size}x{size} grid (from nca-gradio).

1. On shadertoy.com, choose New. Replace all the code of the Image tab with image.glsl.
2. Add Buffer A: the "+" tab beside Image, then Buffer A. Replace its code with buffer_a.glsl.
3. In Buffer A, click iChannel0 and pick Misc > Buffer A (its own previous frame).
4. In Image, click iChannel0 and pick Misc > Buffer A.
5. Press play (or compile). The texture grows from an empty grid; click and drag on it to erase, and it heals.
   Rewind starts again from the empty grid.

The canvas must be at least {width}x{size} pixels; on a smaller one Image is plain purple and nothing grows:
enlarge the view (or go full screen), or export again with a smaller --size.
"""


def shadertoy_files(model: dict, step_frag: str, size: int | str = "auto", digits: int = DIGITS) -> dict[str, str]:
    """The three files by name, from the live-model JSON and the live runtime's step.frag; size "auto" is DEFAULT_SIZE."""
    size = DEFAULT_SIZE if size == "auto" else int(size)
    return {
        "buffer_a.glsl": buffer_a(model, step_frag, size, digits),
        "image.glsl": image(model, size),
        "PASTE.txt": paste_steps(model, size),
    }
