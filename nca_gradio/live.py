"""The live canvas: a model as JSON, and the self-contained page that steps it on the visitor's GPU (WebGL2).

The rule itself runs in `static/step.frag` (see `static/nca-live.js`); this module only packs what the page
needs: the weights (`model_json`), the runtime and shaders inlined into one HTML file (`page_html`, with a
second rule and its mask for a graft: `nca_gradio.graft`'s rule), the exports of `nca export`, and the studio's
Live view (`live_tab`).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path

import torch

from .atomic import prepare_file, prepare_folder, write_text
from .model import NCA, PERCEPTIONS
from .render import RenderError
from .shadertoy import shadertoy_files

STATIC = Path(__file__).resolve().parent / "static"
SHADER_FILES = ("quad.vert", "step.frag", "erase.frag", "display.frag")
RUNTIME_FILE = "nca-live.js"
SCHEMA = "nca-gradio/live-model"
SCHEMA_VERSION = 1
EXPORT_FORMATS = ("html", "json", "glsl", "shadertoy")
EXPORT_SUFFIXES = {"html": (".html", ".htm"), "json": (".json",)}
FOLDER_FORMATS = ("glsl", "shadertoy")  # these write a folder of files
SIZES = (64, 128, 256, 512, 768, 1024)
LIVE_HINT = "drag on the texture to erase it; it heals"  # the one line a visitor needs to play
GRAFT_HINT = "drag to paint where each rule runs (brush paints: B, A or erase); erased cells heal"
GRAFT_SPLIT = "vertical"  # a graft page's starting mask: A on the left half, B on the right, both seen at once
MASK_SIDE = 256  # the inlined starting mask's side at most (the page stretches it to its grid): 87 kB of base64
MAX_OUTPUTS = 8  # render targets one pass writes (nca-live.js: MAX_OUTPUTS)


def _floats(tensor: torch.Tensor) -> list:
    """Nested lists of float32 values written with 9 significant digits: enough to round-trip float32 exactly."""
    values = tensor.detach().to("cpu", torch.float32)
    if values.ndim == 1:
        return [float(f"{v:.9g}") for v in values.tolist()]
    return [_floats(row) for row in values]


def model_json(model: NCA, name: str = "") -> dict:
    """The model as the page (and any other runtime) needs it: architecture, kernels and weights as plain lists.

    Schema (README, "Live in the browser"): w1[h][c * K + k] weighs kernel k of channel c for hidden unit h
    (K = len(kernels)); b1[h]; w2[c][h]. One step: perceive every channel with the kernels on a torus,
    hidden = relu(w1 @ perception + b1), update = w2 @ hidden, each cell adds its update with probability fire_rate.
    The visible image is channels 0..2 + 0.5, clamped to [0, 1].
    """
    return {
        "format": SCHEMA,
        "version": SCHEMA_VERSION,
        "name": name,
        "channels": model.channels,
        "hidden": model.hidden,
        "fire_rate": model.fire_rate,
        "perception": model.perception,
        "kernels": [[list(row) for row in kernel] for kernel in PERCEPTIONS[model.perception]],
        "w1": _floats(model.w1.weight.flatten(1)),
        "b1": _floats(model.w1.bias),
        "w2": _floats(model.w2.weight.flatten(1)),
    }


def shader_sources() -> dict[str, str]:
    """The four shaders, by file name, as the runtime takes them (defines are prepended at compile time)."""
    return {name: (STATIC / name).read_text() for name in SHADER_FILES}


def runtime_js() -> str:
    return (STATIC / RUNTIME_FILE).read_text()


def shader_defines(model: NCA, base: int = 0, count: int | None = None) -> str:
    """The #define lines nca-live.js prepends to step.frag and erase.frag for this model (one pass: layers base..base+count-1)."""
    layers = -(-model.channels // 4)
    count = min(MAX_OUTPUTS, layers - base) if count is None else count
    return (
        f"#define STATE_LAYERS {layers}\n#define KERNELS {len(PERCEPTIONS[model.perception])}\n"
        f"#define HIDDEN_GROUPS {-(-model.hidden // 4)}\n#define OUT_BASE {base}\n#define OUT_COUNT {count}\n"
    )


def check_size(size: int | str) -> int | str:
    """A starting canvas side the page offers (or "auto"), from a number or its text, else a RenderError."""
    if size == "auto":
        return size
    number = int(size) if isinstance(size, int) or (isinstance(size, str) and size.isdigit()) else None
    if number not in SIZES:
        raise RenderError(f"the live canvas size must be auto or one of {', '.join(map(str, SIZES))} cells, got {size}")
    return number


def _script_json(value: object) -> str:
    """JSON that is safe inside a <script> element: no `</script>` can close it and no `<!--` can start the
    tokenizer's escaped state (which swallows the rest of the page), whatever a model's name holds. In JSON
    these characters appear only inside strings, where the \\u escapes read back as the same text."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def mask_json(mask: str | torch.Tensor, size: int | str) -> dict:
    """A graft's starting mask as the page inlines it: bytes (255 = rule B) in base64, at its own resolution.

    A split name (`graft.SPLITS`) is drawn at the canvas size, or MASK_SIDE for a larger or "auto" one; the page
    stretches the mask to its grid cell by cell (nearest), so a split at 256 is the same split at 64 or 1024.
    """
    from .graft import check_mask, split_mask

    if isinstance(mask, str):
        side = min(size, MASK_SIDE) if isinstance(size, int) else MASK_SIDE
        mask = split_mask(mask, side, side)
    levels = (check_mask(mask).detach().to("cpu", torch.float32) * 255).round().to(torch.uint8)
    return {"width": levels.shape[1], "height": levels.shape[0], "levels": base64.b64encode(levels.numpy().tobytes()).decode()}


def page_html(model: NCA, name: str = "", size: int | str = 256, zoom: int = 2, fallback: str = "", autoplay: bool = True,
              graft: NCA | None = None, graft_name: str = "", mask: str | torch.Tensor = GRAFT_SPLIT) -> str:
    """One self-contained HTML page (runtime, shaders and weights inlined) that grows the texture at once.

    It needs no network: save it and open it with a double click. `fallback` is HTML shown after the
    no-WebGL2 notice (the studio points to its server-rendered Grow video there). The page's player is
    `window.ncaPlayer` (`.nca` is the runtime: step, readState, writeState, erase), for scripts and tests.
    `size` "auto" starts at 256 cells on a GPU and at 64 (zoom 4) where WebGL runs on the CPU (SwiftShader).
    With `graft` (rule B) the page runs both rules, as `graft.Graft` does, from `mask` (a split name or an (H, W)
    tensor from 0 = A to 1 = B), and its brush paints the mask (`nca.paint`, `setMask`, `readMask`).
    """
    size = check_size(size)
    names = f"{name} + {graft_name}" if graft is not None else name
    title = html.escape(f"{names} · live NCA texture" if names else "Live NCA texture")
    heading = " + ".join(f"<b>{html.escape(n)}</b>" for n in (name, graft_name if graft is not None else "") if n)
    heading = f"{heading} · " if heading else ""
    options = {"size": size, "zoom": zoom, "fallback": fallback, "autoplay": autoplay}
    if graft is not None:
        options.update(graft=model_json(graft, graft_name), mask=mask_json(mask, size))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ margin: 8px; background: #fafafa; font-family: system-ui, sans-serif; }} .nca-hint {{ margin: 0 0 6px; }}</style>
</head>
<body>
<p class="nca-hint" data-testid="nca-hint">{heading}{LIVE_HINT if graft is None else GRAFT_HINT}</p>
<div id="nca-live"></div>
<script>{runtime_js()}</script>
<script>
window.ncaPlayer = NCALive.mount(document.getElementById("nca-live"), {_script_json(model_json(model, name))},
  {_script_json(shader_sources())}, {_script_json(options)});
</script>
</body>
</html>
"""


def glsl_bundle(model: NCA, name: str = "") -> dict[str, str]:
    """`nca export --format glsl`: the shaders with this model's defines, the runtime and the weights, by file name."""
    files = {}
    for shader, source in shader_sources().items():
        header = "#version 300 es\n"
        if shader in ("step.frag", "erase.frag"):
            if -(-model.channels // 4) > MAX_OUTPUTS:
                header += "// more than 8 state layers: compile once per pass, OUT_BASE / OUT_COUNT set as nca-live.js does\n"
            header += shader_defines(model)
        files[shader] = header + (source if shader != "quad.vert" else source.split("\n", 1)[1])
    files["model.json"] = json.dumps(model_json(model, name))
    files[RUNTIME_FILE] = runtime_js()
    return files


def shadertoy_bundle(model: NCA, name: str = "", size: int | str = "auto") -> dict[str, str]:
    """`nca export --format shadertoy`: buffer_a.glsl, image.glsl and PASTE.txt, written from this model's JSON and
    the runtime's step.frag (its coin-flip hash) by `shadertoy.shadertoy_files`."""
    return shadertoy_files(model_json(model, name), shader_sources()["step.frag"], size)


def export(model: NCA, out: str | Path, fmt: str = "html", name: str = "", size: int | str = "auto",
           graft: NCA | None = None, graft_name: str = "") -> list[Path]:
    """Write the model for the browser: one HTML page, one JSON file, or a folder of shaders (glsl, shadertoy).
    Returns the files written. With `graft` (rule B), an HTML page that runs both rules (`page_html`).
    """
    size = check_size(size)
    check_graft_format(fmt, graft is not None)
    return _write_export(model, check_export_output(out, fmt), fmt, name, size, graft, graft_name)


def check_graft_format(fmt: str, grafted: bool) -> None:
    """Two rules export as a live page only: the JSON schema and the GLSL bundle hold one rule."""
    if grafted and fmt != "html":
        raise RenderError(f"--graft exports a live html page only, not {fmt}: name the output .html")


def check_export_output(out: str | Path, fmt: str) -> Path:
    """The export's output, checked (`atomic.prepare_folder` / `prepare_file`) before a model is loaded or pulled."""
    if fmt not in EXPORT_FORMATS:
        raise RenderError(f"the export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt in FOLDER_FORMATS:
        return prepare_folder(out)
    return prepare_file(out, EXPORT_SUFFIXES[fmt])


def _write_export(model: NCA, out: Path, fmt: str, name: str, size: int | str, graft: NCA | None = None,
                  graft_name: str = "", mask: str | torch.Tensor = GRAFT_SPLIT) -> list[Path]:
    """Each file replaced whole (`atomic`): a full disk is a one-line `SaveError` and leaves the old file."""
    if fmt in FOLDER_FORMATS:
        files = glsl_bundle(model, name) if fmt == "glsl" else shadertoy_bundle(model, name, size)
        return [write_text(out / file, text) for file, text in files.items()]
    if fmt == "html":
        return [write_text(out, page_html(model, name, size, graft=graft, graft_name=graft_name, mask=mask))]
    return [write_text(out, json.dumps(model_json(model, name)))]


def export_format(out: str | Path, fmt: str | None) -> str:
    """The format asked for, else the one the output's name implies: .json is json, a name without a suffix glsl, else html."""
    if fmt:
        return fmt
    suffix = Path(out).suffix.lower()
    return "json" if suffix == ".json" else "glsl" if not suffix else "html"


def export_model(ref: str, out: str | Path, fmt: str | None, size: int | str, load: Callable[[str], NCA],
                 graft: str | None = None, split: str | None = None, mask: str | Path | None = None) -> list[Path]:
    """`nca export`: load the model (`load`: folder or Hub repo id) and write it; the name is the folder's or repo's last part.

    `graft` (`--graft B`) is a second model: the page runs both rules where `split` (a `graft.SPLITS` name) or
    `mask` (an image: black A, white B) says, B on the right half when neither is given.
    """
    from .graft import image_mask

    fmt = export_format(out, fmt)
    size = check_size(size)  # before loading: a pull may take a while
    check_graft_format(fmt, graft is not None)
    if (split or mask) and not graft:
        raise RenderError("--split and --mask say where rule B runs: give it with --graft B")
    side = min(size, MASK_SIDE) if isinstance(size, int) else MASK_SIDE
    where = image_mask(mask, side, side) if mask else split or GRAFT_SPLIT  # a bad image is refused before any load
    out = check_export_output(out, fmt)
    model = load(ref)
    rule_b, name_b = (load(graft), _ref_name(graft)) if graft else (None, "")
    return _write_export(model, out, fmt, _ref_name(ref), size, rule_b, name_b, where)


def _ref_name(ref: str) -> str:
    """A model's name from its folder or Hub repo id: the last part."""
    return Path(str(ref).rstrip("/")).name


# ------------------------------------------------------------------ the studio's Live view

LIVE_HELP = """\
The rule runs **in your browser, on your own GPU**: pick a model (here or in the Grow tab) and it starts growing at once.
**Drag on the texture to erase it** and watch it heal; turn the **rotation** of a Sobel model and the texture turns
with it. The page tiles like the Grow tab's PNG; download it as one HTML file that runs offline, anywhere.
**Graft with** a second model to run two rules on one grid: B starts on the right half, and the brush paints where
each rule runs. Models of one shape (all the bundled Sobel ones) also mix: **A ← blend → B** sets how much of B
the brush paints.
"""
STUDIO_FALLBACK = "Use the studio's <b>Grow</b> tab instead: it renders the same texture as a video on the server."
LIVE_TAB = "3 · Live"  # numbered like the studio's other tabs: it sits between Grow and Heal
LIVE_SIZE = "auto"  # 256 cells on a GPU; 64 where WebGL runs on the CPU (SwiftShader), so that it still grows at once
LIVE_HEIGHT = 580  # px: the frame fits the controls and a 256-cell canvas at zoom 2
GRAFT_ROW = 40  # px: the two-rule controls' row, below the others
NO_GRAFT = "none"  # the "Graft with" list's first choice: one rule


def live_frame(model: NCA, name: str, size: int | str = LIVE_SIZE, graft: NCA | None = None, graft_name: str = "") -> str:
    """The exported page in an iframe (srcdoc): its scripts run wherever the tabs are mounted, with no file route."""
    page = page_html(model, name, size=size, zoom=2, fallback=STUDIO_FALLBACK, graft=graft, graft_name=graft_name)
    title, height = (name, LIVE_HEIGHT) if graft is None else (f"{name} + {graft_name}", LIVE_HEIGHT + GRAFT_ROW)
    return (
        f'<iframe class="nca-live-frame" title="{html.escape(title)}: live texture" srcdoc="{html.escape(page, quote=True)}" '
        f'style="width:100%;height:{height}px;border:0" allow="fullscreen"></iframe>'
    )


def live_tab(model_list, workspace, choices: Callable, folder_of: Callable):
    """Render the Live tab inside the current `gr.Tabs` and follow `model_list` (the Grow tab's model dropdown).

    `choices(workspace)` lists the session's model labels and `folder_of(workspace, label)` gives a label's folder
    (raising gr.Error for an unknown one): the studio's own handlers, so the Live view sees exactly its models.
    """
    import gradio as gr

    from .model_folder import ModelLoadError, load_folder, slug

    def load(label: str, ws) -> NCA:
        try:
            return load_folder(folder_of(ws, label))
        except ModelLoadError as exc:
            raise gr.Error(str(exc)) from None

    def rule_b(label: str | None, ws) -> tuple[NCA | None, str]:
        """The "Graft with" pick, loaded, and its name; (None, "") for none."""
        return (load(label, ws), label) if label and label != NO_GRAFT else (None, "")

    def download_file(model: NCA, label: str, graft: tuple[NCA | None, str], ws) -> str:
        path = ws.path(f"{slug(label)}{'-' + slug(graft[1]) if graft[0] else ''}-live.html")
        path.write_text(page_html(model, label, size="auto", graft=graft[0], graft_name=graft[1]))
        return str(path)

    def show(label: str | None, graft_label: str | None, ws):
        if not label:
            return "<p><i>Choose a model to watch it grow.</i></p>", None
        model, graft = load(label, ws), rule_b(graft_label, ws)
        return live_frame(model, label, graft=graft[0], graft_name=graft[1]), download_file(model, label, graft, ws)

    def prepare_download(label: str | None, graft_label: str | None, ws):
        return download_file(load(label, ws), label, rule_b(graft_label, ws), ws) if label else None

    first = model_list.value
    try:  # the first bundled model, in the page itself: it grows as soon as the tab opens, with no round trip
        initial = live_frame(load_folder(folder_of(workspace.value, first)), first) if first else None
    except (ModelLoadError, gr.Error):
        initial = None
    with gr.Tab(LIVE_TAB, id="live") as tab:
        gr.Markdown(LIVE_HELP)
        with gr.Row():  # the widths wrap the button under the list on a phone, so the list keeps its width
            picker = gr.Dropdown(model_list.choices, value=first, label="Model", scale=3, min_width=300, elem_id="nca-live-model")
            graft_picker = gr.Dropdown([NO_GRAFT, *model_list.choices], value=NO_GRAFT, label="Graft with (rule B, to paint with)",
                                       scale=2, min_width=200, elem_id="nca-live-graft")
            download = gr.DownloadButton("Download the live page (.html)", value=None, scale=1, min_width=240, elem_id="nca-live-download")
        frame = gr.HTML(initial, elem_id="nca-live-view", js_on_load=None, min_height=LIVE_HEIGHT)
    for pick in (picker, graft_picker):
        pick.change(show, [picker, graft_picker, workspace], [frame, download], api_visibility="private", show_progress="hidden")
    tab.select(prepare_download, [picker, graft_picker, workspace], download, api_visibility="private", show_progress="hidden")
    # The Grow tab's list gains trained and pulled models: follow it, and its pick.
    model_list.change(
        lambda label, graft, ws: (gr.Dropdown(choices=list(choices(ws)), value=label), gr.Dropdown(choices=[NO_GRAFT, *choices(ws)], value=graft)),
        [model_list, graft_picker, workspace], [picker, graft_picker], api_visibility="private", show_progress="hidden", queue=False,
    )
    return picker, frame
