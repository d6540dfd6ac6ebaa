"""The Gradio studio: Train, Grow, Live, Heal and Hub tabs.

This module only lays out components and wires them to the library
(`studio`, `studio_settings`, `workspace`, `damage`, `train`, `render`, `images`, `loading`, `hub`); it computes nothing
itself. `build_demo()` makes the whole app; `render_tabs()` renders the same
tabs inside another app's `gr.Blocks`, so a toolkit can mount them.

Each browser session keeps its models in a `gr.State` (a `Workspace`),
so sessions never see each other's models; there is no global model.
"""

import functools
import html
import inspect
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from . import gallery, live, studio
from .card import card_markdown
from .damage import damage_at_pixel, damage_overlay, display_scale, for_display
from .damage import random_damage as random_spot
from .errors import USER_ERRORS, UserError
from .graft import SPLITS, GraftWith, image_mask, rules, split_mask
from .hub import APP_WORDING, HubError, pull, push
from .images import crop_and_resize, image_to_tensor, load_image, load_target
from .live import NO_GRAFT  # the Grow and Live tabs' "Graft with": one rule
from .model import PRESETS, preset_label
from .model_folder import (
    CARD_FILE,
    CONFIG_FILE,
    HUB_LABEL,
    PREVIEW_FILE,
    STUDIO_TRAINED_MARK,
    TARGET_FILE,
    load_folder,
    read_config,
    slug,
)
from .render import DAMAGE_SHAPES, HEAL_GRIDS, Damage, save_animation, save_png
from .studio_settings import (
    CANVAS_SIDES,
    DAMAGE_SIZES,
    FRAME_RATES,
    HEALING_DAMAGE_EVERY,
    HEALING_STEPS,
    NO_START,
    OBJECT_STRENGTHS,
    RENDER_STEPS,
    SEEDS,
    TIME_LIMITS,
    TRAIN_ITERATIONS,
    TRAIN_SIZES,
    StudioTrainSettings,
    fraction,
    whole,
)
from .train import Progress, Status, TrainConfig, device_recipe, estimated_seconds, pick_device
from .train_config import preset_of
from .ui_checks import check_events, user_error
from .verdict import Verdict
from .workspace import Grown, Workspace, bundled_models, idle_limit, model_choices, sweep_idle, zip_model

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
EXAMPLES_DIR = ROOT / "examples"
STOP, STOPPING = "Stop", "Stopping…"  # the run ends after this iteration and keeps its model
READY_STATUS = "<div class='nca-status'><b>Ready</b>: choose a texture and press Start</div>"
GALLERY_SORTS = {"most downloaded": "downloads", "most liked": "likes", "newest": "recent"}

INTRO = """\
# NCA texture studio

Teach a grid of tiny cells to **grow your texture** from nothing, at any size and tiling seamlessly, and to **heal** it when it is scratched.
"""

ABOUT = """\
A **neural cellular automaton** (NCA) is a grid of tiny identical cells. Every cell sees only its eight
neighbours and follows the same small learned rule, over and over. Train that rule on a picture and the cells
learn to **grow the texture from a blank grid**, at any size, tiling seamlessly, and to **repair it** when it is
scratched. **Train** a rule on your texture → **Grow** it as large as you like → **Heal**: damage it and watch it
heal → **Hub**: share it on the Hugging Face Hub.
"""

# Each tab: one line that says what to do, then the details in a closed "How it works" (a phone shows the controls first).
TRAIN_LEAD = "Upload a texture or click an example, then press **Start training**."
TRAIN_HELP = """\
**1.** Upload a photo of a texture (anything that repeats: pebbles, bark, fabric; PNG, JPEG, WebP, BMP, TIFF or GIF) or click an example.
**2.** Press **Start**. The rule begins by doing nothing and learns, step by step, to grow something that looks
like your texture. The strip shows four of the grids it practises on; the curve is the *texture loss*, how different
their look is from your texture (lower is better; hover a point to see the overflow penalty too). **Stop** keeps what it has learnt so far. When it ends, the
model is ready in the other tabs and can be downloaded.
"""

MASK_SPLIT = "mask"  # the graft's split that takes the uploaded mask
GRAFT_SPLITS = [*SPLITS, MASK_SPLIT]
GRAFT_INFO = ("vertical: the model left, this one right; horizontal: top and bottom; circle: this one in the middle. "
              "Two rules of one architecture (a model and its fine-tuned child) blend where a mask is grey. "
              "A cell runs both rules' layers, so half the steps fit")
GROW_LEAD = "Pick a model and a canvas size, then press **Grow**."
GROW_HELP = """\
The studio starts from a blank grid and lets every cell apply the learnt rule again and again: the video shows the
texture emerging. The grid wraps around at its edges, so the final image **tiles seamlessly**: download the PNG and
use it as a repeating background. Larger canvases take longer, so the steps are capped by what this machine grows in about a
minute: the line above **Grow** says how many fit.
"""

DAMAGE_LEAD = "Click on the texture you grew to place the damage, then press **Heal**."
DAMAGE_HELP = """\
The texture you grew last (Grow tab) appears below. **Click on it** to choose where to erase it (or press
**Random spot**), then **Heal**: the cells in that region are wiped out and their neighbours regrow
them. The curve measures how different each frame looks from the texture before the damage. A living texture
keeps changing by itself, so an undamaged twin grows beside it (grey): the damaged curve jumps at the damage,
and the verdict below judges the erased region of the last frame against the same region of the twin.
"""

HUB_LEAD = "**Get** a model by its repo id, or **share** one of yours."
HUB_HELP = """\
Models live on the [Hugging Face Hub](https://huggingface.co/models?other=neural-cellular-automata) as a small
`config.json` and `model.safetensors`. **Get** one by its repo id (`owner/name`): it joins your model list.
**Share** one of yours: a model card with a preview and training details is written for you.
"""

LOSS_CHOICES = [
    ("auto: the best available here", "auto"),
    ("patch: compares small patches, needs no download", "patch"),
    ("ot: VGG16 features (downloads VGG16)", "ot"),
    ("gram: the original lesson's VGG16 loss", "gram"),
]

CSS = """
#nca-train-preview img, #nca-target img { image-rendering: pixelated; }
#nca-train-preview img, #nca-final img { width: 100%; height: 100%; object-fit: contain; }
#nca-examples .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)); grid-template-rows: none; grid-auto-rows: auto; }
#nca-examples .grid-wrap { padding-top: 2.4em; }
.nca-status progress { width: 100%; height: 0.8em; accent-color: var(--color-accent); }
.nca-status { font-size: var(--text-md); }
.nca-status small { color: var(--body-text-color-subdued); }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="teal", secondary_hue="pink")


def launch_options() -> dict[str, Any]:
    """What `launch()` needs besides the address (Gradio 6 takes theme and css there)."""
    return {"theme": theme(), "css": CSS, "max_file_size": "25mb", "footer_links": ["api", "gradio"]}


def sign_in_available() -> bool:
    """True on a Space with `hf_oauth: true` (the Hub then sets OAUTH_CLIENT_ID): users sign in instead of pasting tokens."""
    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID"))


# ------------------------------------------------------------------ error handling


def friendly(fn: Callable) -> Callable:
    """Answer the library's user errors and the handler's own gr.Errors with one quiet `gr.Error` (one log line, no traceback)."""
    where = f"/{fn.__name__}"

    def answer(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error) and not exc.print_exception:
            return exc
        return user_error(exc.message if isinstance(exc, gr.Error) else str(exc), where)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (gr.Error, *USER_ERRORS) as exc:
                raise answer(exc) from None

        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (gr.Error, *USER_ERRORS) as exc:
            raise answer(exc) from None

    return plain


# ------------------------------------------------------------------ handlers


class Handlers:
    """Event handlers. Each takes the session's Workspace; none keeps a model of its own."""

    def __init__(self, models_dir: Path, examples: list[Path]) -> None:
        self.models_dir = models_dir
        self.examples = examples

    # ---------------------------------------------------------- models

    def choices(self, workspace: Workspace) -> list[str]:
        return list(model_choices(workspace, self.models_dir))

    def model_folder(self, workspace: Workspace, label: str | None) -> Path:
        models = model_choices(workspace, self.models_dir)
        if not label:
            raise gr.Error("Choose a model first: train one, get one from the Hub, or pick a bundled one.")
        if label not in models:
            raise gr.Error(f"There is no model called {label!r} in this session: choose one from the list.")
        return models[label]

    def refresh_models(self, workspace: Workspace, grow_choice: str | None, share_choice: str | None, graft_choice: str | None):
        """The model lists with this session's models; the one added last is selected (the graft keeps its pick)."""
        choices = self.choices(workspace)
        pick = lambda current: workspace.latest or current
        return (gr.Dropdown(choices=choices, value=pick(grow_choice)), gr.Dropdown(choices=choices, value=pick(share_choice)),
                gr.Dropdown(choices=[NO_GRAFT, *choices], value=graft_choice if graft_choice in choices else NO_GRAFT))

    def refresh_starts(self, workspace: Workspace, choice: str | None) -> gr.Dropdown:
        """The Train tab's "Start from" list: nothing, or any model of the session's lists; the choice stays."""
        choices = [NO_START, *self.choices(workspace)]
        return gr.Dropdown(choices=choices, value=choice if choice in choices else NO_START)

    def start_chosen(self, workspace: Workspace, choice: str | None) -> tuple[gr.Radio, gr.Checkbox]:
        """Model size and Round shapes show the start model's, and cannot be changed while a run keeps its architecture."""
        models = model_choices(workspace, self.models_dir)
        if not choice or choice == NO_START or choice not in models:
            return gr.Radio(interactive=True), gr.Checkbox(interactive=True)  # a name not in the lists: Start refuses it in one line
        architecture = read_config(models[choice] / CONFIG_FILE)
        preset = preset_of(architecture)
        return (gr.Radio(interactive=False) if preset is None else gr.Radio(value=preset, interactive=False),
                gr.Checkbox(value=architecture.perception == "isotropic", interactive=False))

    def train_run(self, workspace: Workspace | None, settings: StudioTrainSettings) -> tuple[TrainConfig, Path | None]:
        """The run the Train settings describe, and the folder of the model it starts from, found by its label in the
        session's lists (None: a blank rule). Its config.json alone gives the architecture: the run loads it whole."""
        folder = None if settings.starts_blank or workspace is None else self.model_folder(workspace, settings.start_from)
        return settings.config(start=read_config(folder / CONFIG_FILE) if folder else None), folder

    # ---------------------------------------------------------- train

    @staticmethod
    def texture_bytes(texture: str | None) -> bytes:
        if not texture:
            raise gr.Error("Upload a texture image (PNG, JPEG, WebP, BMP, TIFF or GIF) or click one of the examples first.")
        return Path(texture).read_bytes()  # bytes, so that messages never show a server path

    @friendly
    def load_texture(self, texture: str | None):
        """Check an upload at once and show the square the model will learn from."""
        if not texture:
            return None
        return crop_and_resize(load_image(self.texture_bytes(texture)), TrainConfig.target_size)

    @staticmethod
    def texture_status(texture: str | None) -> str:
        """The status line after the texture box changes: what to do next."""
        if not texture:
            return READY_STATUS
        return f"<div class='nca-status'><b>Ready</b>: <i>{html.escape(Path(texture).name)}</i> is loaded; press Start training</div>"

    @staticmethod
    def texture_refused() -> tuple[None, str]:
        """After a refused upload: no square is shown (none would match the file in the box), and the status says so once."""
        return None, "<div class='nca-status'><b>Not loaded</b>: that file could not be read (see the notice); choose another texture</div>"

    def pick_example(self, evt: gr.SelectData) -> str:
        return str(self.examples[evt.index])

    def expected_time(self, workspace: Workspace | None = None, **settings: Any) -> str:
        """What Start will cost, said before it is pressed (the Train settings come as keywords: `StudioTrainSettings`),
        and, with a start model, that the model size and round shapes are that model's."""
        try:
            config, _ = self.train_run(workspace, StudioTrainSettings(**settings))
        except (UserError, gr.Error):
            return ""
        device = pick_device(config.device)
        seconds = estimated_seconds(config, device)
        limit = " (the time limit)" if config.time_budget and seconds >= config.time_budget else ""
        return f"{start_note(config)}Expected: about {studio.duration(seconds)}{limit} on this machine's {device.type.upper()}, batch {config.batch}."

    @friendly
    def train(self, texture: str | None, workspace: Workspace, **chosen: Any):
        """Stream previews, the loss curve and progress; at the end, add the model to every model list.

        The Train settings come as keywords, named as in `StudioTrainSettings`.
        """
        settings = StudioTrainSettings(**chosen)
        config, start = self.train_run(workspace, settings)
        data = self.texture_bytes(texture)
        target = load_target(data, config.target_size)
        folder = workspace.path("model")
        if not workspace.training:  # called through the API: no click marked it requested (`train_requested`)
            workspace.clear_stop()
        workspace.training = True  # until `training_over`, which follows the run however it ends
        if workspace.stop_file.exists():  # Stop was pressed while this run waited its turn in the queue
            raise gr.Error("Training was stopped while it waited its turn: press Start again to train.")
        yield None, None, status_html("Preparing", Progress(0, None, "it"), "building the loss and the model…", html.escape(start_note(config))), gr.skip()
        chunk = studio.ZERO_GPU_CHUNK_SECONDS if studio.on_zero_gpu() else None
        update = None
        for update in studio.train_stream(folder, target, config, workspace.stop_file, chunk, start):
            workspace.touch()  # a long training is use: the idle sweep spares it
            yield update.preview, studio.loss_table(update.history), train_status(update), gr.skip()
        if update is None or update.iteration == 0:
            raise gr.Error("Training was stopped before its first iteration: press Start again.")
        label = workspace.add_model(STUDIO_TRAINED_MARK.join((Path(texture).stem, f"{config.preset}{settings.traits(config)}",
                                                              f"{update.iteration} it")), folder)
        archive = zip_model(folder, workspace.path(f"{slug(label)}.zip"), update.verdict)
        yield update.preview, studio.loss_table(update.history), train_status(update, label), archive

    @staticmethod
    def train_requested(workspace: Workspace) -> None:
        """At Start's click, before the run waits its turn in the queue: a Stop pressed while it waits is kept for it."""
        workspace.clear_stop()
        workspace.training = True

    def stop(self, workspace: Workspace) -> None:
        if workspace.training:  # running or waiting in the queue; with nothing to stop, a Stop is not kept for later
            workspace.request_stop()

    @staticmethod
    def stop_label(workspace: Workspace) -> gr.Button:
        """Stop says on itself that it was heard (a notice would sit over the loss chart); with no run on, it stays Stop."""
        return gr.Button(STOPPING, interactive=False) if workspace.training else gr.Button(STOP, interactive=True)

    @staticmethod
    def training_over(workspace: Workspace) -> gr.Button:
        """After a run, however it ended: Stop is ready for the next one."""
        workspace.training = False
        return gr.Button(STOP, interactive=True)

    # ---------------------------------------------------------- grow

    def checked_grow(self, label: str, size: int, steps: int, fps: int, seed: int, graft_label: str | None, split: str | None,
                     mask: str | None, workspace: Workspace) -> tuple[Path, int, int, int, int, GraftWith | None]:
        """A grow request's model folder, numbers and graft, or a gr.Error before any work (a broken model fails here too)."""
        folder = self.model_folder(workspace, label)
        size, steps = whole("Canvas size", size, CANVAS_SIDES), whole("Steps", steps, RENDER_STEPS)
        fps, seed = whole("Frames per second", fps, FRAME_RATES), whole("Seed", seed, SEEDS)
        graft = self.graft_with(workspace, graft_label, split, mask, size)
        studio.check_render(size, steps, grids=studio.rule_grids(graft))
        rules(folder, graft=graft)
        return folder, size, steps, fps, seed, graft

    def graft_with(self, workspace: Workspace, label: str | None, split: str | None, mask: str | None, size: int) -> GraftWith | None:
        """The Grow tab's second rule and where it runs, or None for one rule."""
        if not label or label == NO_GRAFT:
            return None
        if split == MASK_SPLIT:
            if not mask:
                raise gr.Error("Upload a mask image for the graft (white runs the second rule, black the first), or pick a split.")
            return GraftWith(self.model_folder(workspace, label), image_mask(mask, size, size))
        return GraftWith(self.model_folder(workspace, label), split_mask(split or SPLITS[0], size, size))

    @friendly
    def check_grow(self, label: str, size: int, steps: int, fps: int, seed: int, graft_label: str | None, split: str | None,
                   mask: str | None = None, workspace: Workspace | None = None) -> None:
        """Run before Grow, with no outputs: a refused request leaves the last video and PNG in place."""
        self.checked_grow(label, size, steps, fps, seed, graft_label, split, mask, workspace)

    @friendly
    def grow(self, label: str, size: int, steps: int, fps: int, seed: int, graft_label: str | None, split: str | None,
             mask: str | None = None, workspace: Workspace | None = None, progress=gr.Progress()):
        """Grow from a blank grid (one rule, or two grafted); keep the grid for the Heal tab.

        `mask` defaults to None only so that API callers may leave it out (Gradio makes an input without a value
        optional when its argument defaults to None); the studio always passes the session's `workspace`.
        """
        folder, size, steps, fps, seed, graft = self.checked_grow(label, size, steps, fps, seed, graft_label, split, mask, workspace)
        report = None if studio.on_zero_gpu() else lambda step, _: progress((step, steps), desc="growing")
        rollout = studio.grow_texture(folder, size, steps, studio.frame_every(steps, size), seed, on_frame=report, graft=graft)
        shown = f"{label} grafted with {graft_label}" if graft else label
        name = f"{slug(label)}-{slug(graft_label)}-graft-{size}px" if graft else f"{slug(label)}-{size}px"
        video = save_animation(rollout.frames, workspace.path(f"{name}-growing.mp4"), fps=fps)
        png = save_png(rollout.final, workspace.path(f"{name}.png"))
        workspace.grown = Grown(shown, folder, rollout.state, rollout.final, seed, steps, graft)
        return video, str(png), str(png)

    @staticmethod
    def steps_note(size: int, steps: int) -> str:
        """What fits at this canvas size, said before the click."""
        most = studio.most_steps(size)
        where = "this CPU" if studio.render_device().type == "cpu" else "this machine"
        if steps > most:
            return f"⚠️ **{steps} steps at {size} px is more than {where} grows (at most {most})**: lower the steps or the canvas."
        return f"At {size} px {where} grows up to {most} steps."

    def fit_steps(self, size: int, steps: int):
        """A new canvas size: lower the steps to what fits (on the slider's grid of 10) and say what fits."""
        steps = fitted_steps(steps, studio.most_steps(size))
        return gr.Slider(value=steps), self.steps_note(size, steps)

    def show_grown(self, workspace: Workspace, heal_steps: int):
        """The Heal tab's canvas, the texture grown last (zoomed if small), and healing steps that fit its size."""
        grown = self.grown(workspace)
        height, width = grown.frame.shape[:2]
        most = studio.most_heal_steps(width)
        fitted = fitted_steps(heal_steps, most)
        note = f"Grown with **{grown.model}**: {width}×{height} cells (heals up to {most} steps here). Click on it to place the damage."
        return for_display(grown.frame), note, gr.Slider(value=fitted, info=heal_steps_info(heal_steps, fitted, width, most))

    # ---------------------------------------------------------- damage

    @staticmethod
    def grown(workspace: Workspace) -> Grown:
        if workspace.grown is None:
            raise gr.Error("Grow a texture in the Grow tab first: it appears here, ready to be damaged.")
        return workspace.grown

    @friendly
    def place_damage(self, shape: str, size: float, workspace: Workspace, evt: gr.SelectData):
        """A click on the texture: centre the damage there and show the region that will be erased."""
        grown = self.grown(workspace)
        zoom = display_scale(grown.frame)  # the click is in the zoomed image's pixels
        height, width = grown.frame.shape[:2]
        damage = damage_at_pixel(shape, fraction("Damage size", size, DAMAGE_SIZES), evt.index[0], evt.index[1], width * zoom, height * zoom)
        return damage.x, damage.y, for_display(damage_overlay(grown.frame, damage))

    @friendly
    def show_damage(self, shape: str, size: float, x: float, y: float, workspace: Workspace):
        if workspace.grown is None:
            return None
        damage = Damage(shape, fraction("Damage x", x), fraction("Damage y", y), fraction("Damage size", size, DAMAGE_SIZES))
        return for_display(damage_overlay(workspace.grown.frame, damage))

    @friendly
    def random_damage(self, shape: str, size: float, workspace: Workspace):
        grown = self.grown(workspace)
        damage = random_spot(shape, fraction("Damage size", size, DAMAGE_SIZES))
        return damage.x, damage.y, for_display(damage_overlay(grown.frame, damage))

    def checked_heal(self, shape: str, size: float, x: float, y: float, steps: int, fps: int, workspace: Workspace):
        """A healing request's grown texture, damage and numbers, or a gr.Error before any work."""
        grown = self.grown(workspace)
        damage = Damage(shape, fraction("Damage x", x), fraction("Damage y", y), fraction("Damage size", size, DAMAGE_SIZES))
        steps, fps = whole("Healing steps", steps, HEALING_STEPS), whole("Frames per second", fps, FRAME_RATES)
        side = grown.state.shape[-1]
        every = studio.frame_every(steps, side)
        lead = studio.lead_steps(every, steps)
        studio.check_render(side, lead + steps, grids=HEAL_GRIDS * studio.rule_grids(grown.graft))
        return grown, damage, steps, fps, every, lead

    @friendly
    def check_heal(self, shape: str, size: float, x: float, y: float, steps: int, fps: int, workspace: Workspace) -> None:
        """Run before Heal, with no outputs: a refused request leaves the last video and curve in place."""
        self.checked_heal(shape, size, x, y, steps, fps, workspace)

    @friendly
    def heal(self, shape: str, size: float, x: float, y: float, steps: int, fps: int, workspace: Workspace, progress=gr.Progress()):
        """Erase the region of the grown texture, let it heal beside an undamaged twin, and measure the healing."""
        grown, damage, steps, fps, every, lead = self.checked_heal(shape, size, x, y, steps, fps, workspace)
        report = None if studio.on_zero_gpu() else lambda step, _: progress((step, lead + steps), desc="healing")
        healing = studio.heal(grown.folder, grown.state, damage, steps, every, grown.seed + 1, on_frame=report, graft=grown.graft)
        video = save_animation(healing.rollout.frames, workspace.path(f"{slug(grown.model)}-healing.mp4"), fps=fps)
        curve = studio.heal_curve(healing.rollout, grown.frame, healing.undamaged)
        curve["step"] += grown.steps  # steps count from the start of growth, as the verdict's do
        target = None if grown.graft else folder_target(grown.folder)  # a graft grows two textures: no one target to judge by
        verdict = studio.heal_verdict(healing, damage, lead + 1, grown.steps, target)
        said = verdict.sentence[0].upper() + verdict.sentence[1:]
        note = (f"A {shape} of size {size:g} was erased from **{grown.model}** at step {grown.steps + lead + 1} (grown {grown.steps} steps, "
                f"then {lead} more), then it healed for {steps} steps. {said}.")
        return video, curve, note

    # ---------------------------------------------------------- hub

    @staticmethod
    def token(typed: str | None, oauth_token: gr.OAuthToken | None) -> str | bool:
        """A typed token, else the signed-in user's, else False: a visitor never acts with the server's HF_TOKEN.

        False tells `hub` to send no token at all (huggingface_hub would otherwise pick up the server's). Never shown or logged.
        """
        return (typed or "").strip() or (oauth_token.token if oauth_token is not None else None) or False

    @friendly
    def pull(self, repo_id: str, revision: str, typed_token: str, workspace: Workspace, oauth_token: gr.OAuthToken | None):
        """Pull into the session's own cache, so a private model never serves another session (and the files may be shown)."""
        repo_id = (repo_id or "").strip()
        if not repo_id:
            raise gr.Error("Type the repo id of a model, such as owner/name.")
        folder = pull(
            repo_id, revision=(revision or "").strip() or None, token=self.token(typed_token, oauth_token),
            cache_dir=workspace.hub_cache, wording=APP_WORDING, log=gr.Info,
        )
        load_folder(folder)  # only a model that loads joins the list
        label = workspace.add_model(HUB_LABEL.format(repo_id), folder)
        card = (folder / CARD_FILE).read_text(errors="replace") if (folder / CARD_FILE).exists() else "*This repo has no model card.*"
        preview = str(folder / PREVIEW_FILE) if (folder / PREVIEW_FILE).exists() else None
        note = f"Got **{label}**: it is now in your model lists (Grow, and Share below)."
        return card_markdown(card), gr.Image(preview, visible=preview is not None), note

    @friendly
    def push(self, label: str, repo_id: str, private: bool, typed_token: str, workspace: Workspace, oauth_token: gr.OAuthToken | None):
        folder = self.model_folder(workspace, label)
        repo_id = (repo_id or "").strip()
        if not repo_id:
            raise gr.Error("Type a repo id to share to, such as your-name/my-texture.")
        token = self.token(typed_token, oauth_token)
        if token is False:
            where = "Sign in with Hugging Face above" if sign_in_available() else "Paste a Hub write token into the Hub token box"
            raise gr.Error(f"{where} to share a model.")
        url = push(folder, repo_id, private=bool(private), token=token, wording=APP_WORDING)
        return f"✅ Shared **{label}** as [{repo_id}]({url})."


# ------------------------------------------------------------------ status text

    # ---------------------------------------------------------- gallery

    def browse(self, text: str, sort: str, pages: int):
        """Shared models, `pages` pages of them: listed at once, then again with their previews.

        A Hub that cannot be reached is one line in the note; the rest of the studio carries on.
        """
        if sort not in GALLERY_SORTS:
            raise gr.Error(f"Sort by one of: {', '.join(GALLERY_SORTS)}.")
        wanted = max(1, int(pages or 1)) * gallery.PAGE_SIZE
        try:
            found = gallery.find(text or "", sort=GALLERY_SORTS[sort], limit=wanted)
        except HubError as exc:
            yield [], [], f"The gallery is unavailable: {exc}", gr.Button(visible=False)
            return
        models = found.models
        ids = [m.repo_id for m in models]
        count = f"{len(models)} shared model{'s' if len(models) != 1 else ''}"
        note = f"{count}; click one to get it." if models else "No shared models match that search."
        note = f"{note} {found.skipped_note()}".strip()
        more = gr.Button(visible=len(models) == wanted)
        waiting = str(gallery.placeholder())
        yield [(waiting, m.caption()) for m in models], ids, note, more
        pictures = gallery.previews(models)
        yield [(str(p) if p else waiting, m.caption()) for p, m in zip(pictures, models)], ids, note, more

    def get_shared(self, shown: list[str], typed_token: str, workspace: Workspace, oauth_token: gr.OAuthToken | None,
                   evt: gr.SelectData):
        """One click on a gallery card pulls that model, as Get model would."""
        if not shown or not 0 <= evt.index < len(shown):
            raise gr.Error("That model is no longer in the gallery: search again.")
        repo_id = shown[evt.index]
        return repo_id, *self.pull(repo_id, "", typed_token, workspace, oauth_token)


def folder_target(folder: Path) -> torch.Tensor | None:
    """The model folder's target.png as a tensor, to judge its texture by; None where it has none or it cannot be read."""
    try:
        return image_to_tensor(load_image(folder / TARGET_FILE)) if (folder / TARGET_FILE).is_file() else None
    except USER_ERRORS:
        return None


def status_html(state: str, progress: Progress, where: str, detail: str) -> str:
    """The Train tab's status: a bar (moving but empty while the total is unknown), then what it stands for, in words."""
    bar = "<progress></progress>" if progress.total is None else f'<progress max="{progress.total:g}" value="{progress.done:g}"></progress>'
    return f'<div class="nca-status">{bar}<br><b>{state}</b>: {where} <small>{detail}</small></div>'


def progress_words(update: Status) -> str:
    """Where the run stands, in the units of its bar: iterations of a fixed run, seconds of a time limit, no total until measured."""
    progress = update.progress
    if progress.total is None:
        return f"iteration {update.iteration} · measuring speed…"
    if progress.unit == "s":
        return f"iteration {update.iteration} · {studio.duration(progress.done)} of the {studio.duration(progress.total)} time limit"
    return f"iteration {update.iteration} of {progress.total:g}"


def loss_words(update: Status) -> str:
    """The loss to read (the median of the last few iterations), and a word on a spike where one happens."""
    if update.recent_texture_loss is None:
        return ""
    spike = (f" (this iteration spiked to {studio.readable(update.texture_loss)}: early on the rule is still learning to keep its "
             "cells in range)") if update.spiking else ""
    return f"texture loss {studio.readable(update.recent_texture_loss)}{spike} · "


def train_status(update: Status, label: str | None = None) -> str:
    done = update.finished or update.stopped
    state = ("Finished" if update.finished else "Stopped") if label else "Saving" if done else "Training"
    left = f" · about {studio.duration(update.seconds_left)} left" if update.seconds_left is not None else ""
    detail = f"· {loss_words(update)}{studio.duration(update.seconds)} elapsed{left} · {update.loss_name} loss on {update.device}"
    if label:
        detail += f" · saved as <b>{label}</b>, ready in the other tabs"
    elif done and update.iteration:
        detail += " · growing it 1,024 steps to judge it, writing its card and preview…"
    return status_html(state, update.progress, progress_words(update), detail) + (verdict_html(update.verdict) if label else "")


def start_note(config: TrainConfig) -> str:
    """With a start model, that Model size and Round shapes are that model's, whatever the controls say; else ''."""
    if not config.start_from:
        return ""
    round_shapes = "round shapes" if config.perception == "isotropic" else "no round shapes"
    return f"Starting from {config.start_from}: the model size ({config.preset}) and {round_shapes} are that model's, whatever is chosen above. "


def verdict_html(verdict: Verdict | None) -> str:
    """The run's verdict under the status: what the model learned, the figure behind it, and what to do next."""
    if verdict is None:
        return ""
    advice = (f"<br>To learn more, set Iterations to {verdict.goal:,} or more (or a longer time limit) and press Start: "
              "a new run starts from the beginning." if verdict.advice else "")
    return (f'<div class="nca-verdict"><b>Verdict: {html.escape(verdict.sentence)}.</b>{advice}'
            f"<br><small>{html.escape(verdict.figure())}</small></div>")


def preset_choices(round_shapes: bool = False) -> list[tuple[str, str]]:
    """Radio labels in `nca train --preset`'s words, with what each size costs (fewer numbers with round shapes)."""
    perception = "isotropic" if round_shapes else "sobel"
    return [(preset_label(name, perception), name) for name in PRESETS]


# ------------------------------------------------------------------ layout


def heal_steps_info(asked: int, fitted: int, side: int, most: int) -> str:
    """The Healing steps slider's note: a lowered value is said where it was lowered, before Heal is pressed."""
    if fitted < asked:
        return f"lowered from {asked} to {fitted}: a {side}-cell canvas heals at most {most} steps here"
    return f"up to {most} at this canvas size"


def fitted_steps(steps: int, most: int) -> int:
    """`steps`, lowered to what fits (`most`) on the step sliders' grid of 10 when it does not fit."""
    return steps if steps <= most else max(10, most // 10 * 10)


def help_text(lead: str, details: str) -> None:
    """A tab's one-line instruction, and its details folded away so that the controls come first on a phone."""
    gr.Markdown(lead, elem_classes="nca-lead")
    with gr.Accordion("How it works", open=False, elem_classes="nca-help"):
        gr.Markdown(details)


@dataclass
class StudioTabs:
    """The components a host app may want to hook into (for example to pre-select a model)."""

    workspace: gr.State
    texture: gr.File
    grow_model: gr.Dropdown
    share_model: gr.Dropdown
    train_button: gr.Button
    grow_button: gr.Button
    heal_button: gr.Button


def render_tabs(models_dir: str | Path = MODELS_DIR, examples_dir: str | Path = EXAMPLES_DIR, train_concurrency: int | None = None) -> StudioTabs:
    """Render the studio's tabs inside the current `gr.Blocks` (call it within `with gr.Blocks():`).

    Training events share the concurrency group "nca-train" (one at a time unless
    `train_concurrency` or NCA_TRAIN_CONCURRENCY says more), so waiting users see their place in the queue.
    The tabs' own events check the values an API call sends (`ui_checks`), whatever Blocks hosts them.
    """
    root = gr.context.Context.root_block
    host_events = set(root.fns)
    models_dir, examples_dir = Path(models_dir), Path(examples_dir)
    examples = sorted(examples_dir.glob("*.png")) if examples_dir.is_dir() else []
    gr.set_static_paths([p for p in (models_dir, examples_dir) if p.is_dir()])
    handlers = Handlers(models_dir, examples)
    train_limit = train_concurrency or int(os.environ.get("NCA_TRAIN_CONCURRENCY", "1"))
    workspace = gr.State(Workspace(), delete_callback=Workspace.close)
    # Gradio deletes (delete_callback) only a State value that an event has set: each page load gives its session
    # a Workspace of its own, so the session's files go about an hour after its page is closed.
    root.load(Workspace, None, workspace, api_visibility="private")
    bundled = list(bundled_models(models_dir))
    start = StudioTrainSettings.for_recipe(device_recipe(pick_device("auto")))  # the Train tab's defaults follow this machine's device
    first = bundled[0] if bundled else None

    with gr.Tabs(overflow_behavior="wrap", elem_id="nca-tabs") as tabs:  # on a phone the tabs wrap onto a second line, never hide in a menu
        with gr.Tab("1 · Train", id="train"):
            help_text(TRAIN_LEAD, TRAIN_HELP)
            with gr.Row():
                with gr.Column(scale=4):
                    texture = gr.File(label="Your texture image", file_types=["image"], elem_id="nca-texture", height=110)
                    gallery = gr.Gallery(
                        [str(p) for p in examples], label="…or click an example", columns=4, height=130,
                        allow_preview=False, object_fit="cover", elem_id="nca-examples", buttons=[],
                    )
                    target = gr.Image(label="What the model learns from", interactive=False, height=200, format="png", elem_id="nca-target", buttons=[])
                with gr.Column(scale=4):
                    start_model = gr.Dropdown(
                        [NO_START, *bundled], value=start.start_from, label="Start from", allow_custom_value=True,
                        info="a model's rule to fine-tune on your texture (bundled, trained or from the Hub); the model size and "
                        "round shapes then follow that model", elem_id="nca-start-from",
                    )  # any name is let through: the handlers look it up in the session's own models and refuse others in one line
                    preset = gr.Radio(
                        preset_choices(), value=start.preset, label="Model size", info=f"how many numbers the rule learns: more look better but train slower. Starts at {start.preset} with "
                        f"{start.iterations} iterations so a first model comes in minutes; `nca train` defaults to {TrainConfig().preset}, "
                        f"{TrainConfig().iters} iterations on a CPU",
                        elem_id="nca-preset",
                    )
                    loss = gr.Dropdown(LOSS_CHOICES, value=start.loss, label="Loss (how looks are compared)", elem_id="nca-loss")
                    isotropic = gr.Checkbox(
                        start.isotropic, label="Round shapes (no sense of direction)",
                        info="for scattered dots, stars, bubbles on a plain ground: stops one-sided crescents; not for dense or striped textures", elem_id="nca-isotropic",
                    )
                    objects = gr.Radio(
                        list(OBJECT_STRENGTHS), value=start.objects,
                        label="Whole objects (patch loss, about 40% slower)",
                        info="copies patches of the image, so shapes keep their edges; stronger fades colours", elem_id="nca-objects",
                    )
                    healing = gr.Checkbox(
                        start.practise_healing, label="Practise healing",
                        info=f"erases a random spot in one training grid every {HEALING_DAMAGE_EVERY}th iteration, so the model heals cleanly in the Heal tab; "
                        "it can change the texture", elem_id="nca-healing",
                    )
                    with gr.Row():
                        iterations = gr.Slider(*TRAIN_ITERATIONS, value=start.iterations, step=1, precision=0, label="Iterations",
                                               info="more = better, slower", elem_id="nca-iterations")
                        size = gr.Slider(*TRAIN_SIZES, value=start.size, step=8, precision=0, label="Training size (cells)", info="larger sees bigger shapes", elem_id="nca-size")
                        time_limit = gr.Number(start.time_limit, minimum=TIME_LIMITS[0], maximum=TIME_LIMITS[1], precision=0, label="Time limit (s)",
                                               info="0: none; with a limit the run fits its iterations to it", elem_id="nca-time-limit")
                    expected = gr.Markdown(handlers.expected_time(**asdict(start)),
                                           elem_id="nca-train-expected")
                    with gr.Row():
                        train_button = gr.Button("Start training", variant="primary", elem_id="nca-start")
                        stop_button = gr.Button(STOP, variant="stop", elem_id="nca-stop")
                    status = gr.HTML(READY_STATUS, label="Training status",
                                     elem_id="nca-train-status")
                with gr.Column(scale=5):
                    preview = gr.Image(label="Grids it practises on (live)", interactive=False, height=150, format="png", elem_id="nca-train-preview", buttons=[])
                    plot = gr.LinePlot(
                        x="iteration", y="log10 texture loss", label="Texture loss (log scale, lower is better)", height=280, y_axis_format=".2f",
                        tooltip=["texture loss", "overflow"], elem_id="nca-loss-plot",
                    )
                    download = gr.DownloadButton("Download the model (.zip)", value=None, elem_id="nca-download")

        with gr.Tab("2 · Grow", id="grow"):
            help_text(GROW_LEAD, GROW_HELP)
            with gr.Row():
                with gr.Column(scale=2):
                    grow_model = gr.Dropdown(bundled, value=first, label="Model", info="bundled, trained or from the Hub", elem_id="nca-grow-model")
                    canvas = gr.Slider(*CANVAS_SIDES, value=256, step=16, precision=0, label="Canvas (pixels a side)", elem_id="nca-canvas")
                    steps = gr.Slider(*RENDER_STEPS, value=400, step=10, precision=0, label="Steps", info="how many times every cell updates", elem_id="nca-steps")
                    fps = gr.Slider(*FRAME_RATES, value=30, step=1, precision=0, label="Frames per second", elem_id="nca-fps")
                    seed = gr.Number(0, precision=0, minimum=SEEDS[0], label="Seed", info="another seed, another arrangement", elem_id="nca-seed")
                    with gr.Accordion("Graft with a second rule", open=False, elem_id="nca-graft"):
                        graft_model = gr.Dropdown([NO_GRAFT, *bundled], value=NO_GRAFT, label="Graft with", info=GRAFT_INFO,
                                                  elem_id="nca-graft-model")
                        graft_split = gr.Radio(GRAFT_SPLITS, value=SPLITS[0], label="Where the second rule runs", elem_id="nca-graft-split",
                                               info="mask: the image below, stretched to the canvas: white runs the second rule, "
                                                    "black the first, grey blends")
                        graft_mask = gr.Image(type="filepath", label="Graft mask",
                                              image_mode="L", sources=["upload", "clipboard"], height=160, elem_id="nca-graft-mask")
                    fits = gr.Markdown(Handlers.steps_note(canvas.value, steps.value), elem_id="nca-grow-fits")
                    grow_button = gr.Button("Grow", variant="primary", elem_id="nca-grow")
                with gr.Column(scale=3):
                    grow_video = gr.Video(label="Growing from a blank grid", autoplay=True, loop=True, interactive=False, height=420, elem_id="nca-grow-video")
                with gr.Column(scale=3):
                    final = gr.Image(label="Final texture (tiles seamlessly)", type="filepath", interactive=False, height=360, buttons=["download", "fullscreen"], elem_id="nca-final")
                    png = gr.DownloadButton("Download PNG", value=None, elem_id="nca-png")

        live.live_tab(grow_model, workspace, handlers.choices, handlers.model_folder)

        with gr.Tab("4 · Heal", id="damage"):
            help_text(DAMAGE_LEAD, DAMAGE_HELP)
            with gr.Row():
                with gr.Column(scale=3):
                    canvas_image = gr.Image(label="Click to place the damage", interactive=False, height=420, format="png", elem_id="nca-damage-canvas", buttons=[])
                    grown_note = gr.Markdown("*Nothing grown yet: use the Grow tab.*", elem_id="nca-grown-note")
                with gr.Column(scale=2):
                    shape = gr.Radio(list(DAMAGE_SHAPES), value="circle", label="Shape", elem_id="nca-shape")
                    damage_size = gr.Slider(*DAMAGE_SIZES, value=0.2, step=0.01, label="Size (fraction of the canvas)", elem_id="nca-damage-size")
                    with gr.Row():
                        damage_x = gr.Slider(0, 1, value=0.5, step=0.001, label="Centre x", info="0 left, 1 right", elem_id="nca-damage-x")
                        damage_y = gr.Slider(0, 1, value=0.5, step=0.001, label="Centre y", info="0 top, 1 bottom", elem_id="nca-damage-y")
                    heal_steps = gr.Slider(*HEALING_STEPS, value=300, step=10, precision=0, label="Healing steps", elem_id="nca-heal-steps")
                    heal_fps = gr.Slider(*FRAME_RATES, value=30, step=1, precision=0, label="Frames per second", elem_id="nca-heal-fps")
                    with gr.Row():
                        random_button = gr.Button("Random spot", elem_id="nca-random")
                        heal_button = gr.Button("Heal", variant="primary", elem_id="nca-heal")
                with gr.Column(scale=3):
                    heal_video = gr.Video(label="Damage and regrowth", autoplay=True, loop=True, interactive=False, elem_id="nca-heal-video")
                    heal_plot = gr.LinePlot(
                        x="step", y="texture loss", color="grid", label="Healing: the damaged grid (red) against its undamaged twin (grey)", height=280,
                        color_map={studio.DAMAGED: "#e11d48", studio.UNDAMAGED: "#9ca3af"}, elem_id="nca-heal-plot",
                    )
                    heal_note = gr.Markdown(label="Healing verdict", show_label=False, elem_id="nca-heal-note")

        with gr.Tab("5 · Hub", id="hub") as hub_tab:
            help_text(HUB_LEAD, HUB_HELP)
            with gr.Accordion("Find shared models", open=True, elem_id="nca-gallery-box"):
                with gr.Row():
                    shared_search = gr.Textbox(label="Search", placeholder="part of a name, e.g. pebbles", scale=3, elem_id="nca-gallery-search")
                    shared_sort = gr.Radio(list(GALLERY_SORTS), value="most downloaded", label="Sort", scale=2, elem_id="nca-gallery-sort")
                shared = gr.Gallery(label="Shared models", columns=3, height="auto", allow_preview=False, elem_id="nca-gallery", buttons=[])
                shared_note = gr.Markdown(label="Gallery note", show_label=False, elem_id="nca-gallery-note")
                more_shared = gr.Button("More", visible=False, size="sm", elem_id="nca-gallery-more")
                shared_ids, shared_pages = gr.State([]), gr.State(1)
            with gr.Row():
                with gr.Column():
                    gr.Markdown("### Get a model")
                    repo = gr.Textbox(label="Repo id", placeholder="owner/name", elem_id="nca-pull-repo")
                    revision = gr.Textbox(label="Revision (optional)", placeholder="main, a tag or a commit", elem_id="nca-pull-revision")
                    pull_button = gr.Button("Get model", variant="primary", elem_id="nca-pull")
                    pull_note = gr.Markdown(label="Get note", show_label=False, elem_id="nca-pull-note")
                    card_preview = gr.Image(label="Preview", interactive=False, height=160, visible=False, elem_id="nca-card-preview", buttons=[])
                    card = gr.Markdown(label="Model card", show_label=False, elem_id="nca-card")
                with gr.Column():
                    gr.Markdown("### Share a model")
                    if sign_in_available():
                        gr.LoginButton()
                    token = gr.Textbox(
                        label="Hub token", type="password", placeholder="hf_…", visible=not sign_in_available(), elem_id="nca-token",
                        info="your own token: a write token to share, a read token for private repos; used for this request only, never stored or shown",
                    )
                    share_model = gr.Dropdown(bundled, value=first, label="Model to share", elem_id="nca-share-model")
                    share_repo = gr.Textbox(label="Share as (repo id)", placeholder="your-name/my-texture", elem_id="nca-push-repo")
                    private = gr.Checkbox(label="Private repo", value=False, elem_id="nca-private")
                    push_button = gr.Button("Share on the Hub", variant="primary", elem_id="nca-push")
                    push_note = gr.Markdown(label="Share note", show_label=False, elem_id="nca-push-note")

    # ---------------------------------------------------------- wiring
    loading = texture.change(handlers.load_texture, texture, target, api_name="load_texture", show_progress="minimal")
    loading.success(handlers.texture_status, texture, status, api_visibility="private", queue=False, show_progress="hidden")
    loading.failure(handlers.texture_refused, None, [target, status], api_visibility="private", queue=False, show_progress="hidden")
    gallery.select(handlers.pick_example, None, texture, api_visibility="private")
    isotropic.change(lambda round_shapes: gr.Radio(choices=preset_choices(round_shapes)), isotropic, preset, api_visibility="private", queue=False)
    train_settings = StudioTrainSettings.in_order({
        "preset": preset, "loss": loss, "iterations": iterations, "size": size, "isotropic": isotropic, "objects": objects,
        "practise_healing": healing, "time_limit": time_limit, "start_from": start_model,
    })  # passed by name (inputs_kwargs), so the handlers get them as one StudioTrainSettings; the API keeps this order
    for setting in train_settings.values():
        setting.change(handlers.expected_time, inputs_kwargs={**train_settings, "workspace": workspace}, outputs=expected,
                       api_visibility="private", queue=False, show_progress="hidden")
    train_button.click(handlers.train_requested, workspace, None, api_visibility="private", queue=False)
    start_model.change(handlers.start_chosen, [workspace, start_model], [preset, isotropic], api_visibility="private", queue=False)
    training = train_button.click(
        handlers.train, [texture], [preview, plot, status, download], inputs_kwargs={**train_settings, "workspace": workspace},
        api_name="train", show_progress="minimal", concurrency_id="nca-train", concurrency_limit=train_limit,
    )
    training.success(handlers.refresh_models, [workspace, grow_model, share_model, graft_model], [grow_model, share_model, graft_model], api_name="models")
    refresh_starts = {"fn": handlers.refresh_starts, "inputs": [workspace, start_model], "outputs": start_model,
                      "api_visibility": "private", "queue": False}  # the Train tab's start list, after each event that adds a model
    training.success(**refresh_starts)
    training_over = {"fn": handlers.training_over, "inputs": workspace, "outputs": stop_button, "api_visibility": "private", "queue": False}
    training.then(**training_over)
    training.failure(**training_over)  # in Gradio 6 a run that raised does not reach .then: Stop stayed "Stopping…"
    stop_button.click(handlers.stop, workspace, None, api_name="stop_training", concurrency_limit=None).then(
        handlers.stop_label, workspace, stop_button, api_visibility="private", queue=False)

    canvas.change(handlers.fit_steps, [canvas, steps], [steps, fits], api_visibility="private", show_progress="hidden", queue=False)
    steps.change(handlers.steps_note, [canvas, steps], fits, api_visibility="private", show_progress="hidden", queue=False)
    grow_inputs = [grow_model, canvas, steps, fps, seed, graft_model, graft_split, graft_mask, workspace]
    grow_button.click(handlers.check_grow, grow_inputs, None, api_visibility="private", show_progress="hidden", concurrency_limit=None).success(
        handlers.grow, grow_inputs, [grow_video, final, png], api_name="grow", concurrency_id="nca-render", concurrency_limit=2,
    ).success(handlers.show_grown, [workspace, heal_steps], [canvas_image, grown_note, heal_steps], api_visibility="private")

    canvas_image.select(handlers.place_damage, [shape, damage_size, workspace], [damage_x, damage_y, canvas_image], api_visibility="private", show_progress="hidden")
    for control in (shape, damage_size, damage_x, damage_y):
        control.input(handlers.show_damage, [shape, damage_size, damage_x, damage_y, workspace], canvas_image, api_visibility="private", show_progress="hidden")
    random_button.click(handlers.random_damage, [shape, damage_size, workspace], [damage_x, damage_y, canvas_image], api_name="random_damage")
    heal_inputs = [shape, damage_size, damage_x, damage_y, heal_steps, heal_fps, workspace]
    heal_button.click(handlers.check_heal, heal_inputs, None, api_visibility="private", show_progress="hidden", concurrency_limit=None).success(
        handlers.heal, heal_inputs, [heal_video, heal_plot, heal_note], api_name="heal", concurrency_id="nca-render", concurrency_limit=2,
    )

    pull_button.click(handlers.pull, [repo, revision, token, workspace], [card, card_preview, pull_note], api_name="pull", concurrency_id="nca-hub").success(
        handlers.refresh_models, [workspace, grow_model, share_model, graft_model], [grow_model, share_model, graft_model], api_visibility="private"
    ).success(**refresh_starts)
    browse_inputs, browse_outputs = [shared_search, shared_sort, shared_pages], [shared, shared_ids, shared_note, more_shared]
    hub_tab.select(handlers.browse, browse_inputs, browse_outputs, api_name="browse", concurrency_id="nca-gallery", show_progress="minimal")
    page_turns = [(shared_search.submit, lambda: 1, None), (shared_sort.change, lambda: 1, None),
                  (more_shared.click, lambda pages: pages + 1, shared_pages)]  # a new search starts at page 1; More adds one
    for event, pages, current in page_turns:
        event(pages, current, shared_pages, api_visibility="private", queue=False).then(
            handlers.browse, browse_inputs, browse_outputs, api_visibility="private", concurrency_id="nca-gallery", show_progress="minimal")
    shared.select(handlers.get_shared, [shared_ids, token, workspace], [repo, card, card_preview, pull_note], api_visibility="private",
                  concurrency_id="nca-hub").success(
        handlers.refresh_models, [workspace, grow_model, share_model, graft_model], [grow_model, share_model, graft_model], api_visibility="private"
    ).success(**refresh_starts).success(lambda: gr.Tabs(selected="grow"), None, tabs, api_visibility="private", queue=False)
    push_button.click(handlers.push, [share_model, share_repo, private, token, workspace], push_note, api_name="push", concurrency_id="nca-hub")
    check_events(root, set(root.fns) - host_events)
    sweep_idle_workspaces(root, idle_limit())
    return StudioTabs(workspace, texture, grow_model, share_model, train_button, grow_button, heal_button)


def session_workspaces(blocks: gr.Blocks) -> list[Workspace]:
    """Every session's Workspace in a running app (Gradio's state holder is set at launch)."""
    holder = getattr(blocks, "state_holder", None)
    sessions = list(holder.session_data.values()) if holder is not None else []
    return [value for session in sessions for value in list(session.state_data.values()) if isinstance(value, Workspace)]


def sweep_idle_workspaces(blocks: gr.Blocks, idle_seconds: float) -> None:
    """In a daemon thread, every so often, delete the files of workspaces unused for `idle_seconds` (`workspace.sweep_idle`).

    A page's session is deleted by Gradio an hour after the page closes, but a gradio_client session has no page:
    without this its files stayed until the server stopped. The thread ends with the app (it holds it weakly).
    """
    app = weakref.ref(blocks)
    every = min(600.0, idle_seconds / 4)

    def sweep_forever() -> None:
        while (running := app()) is not None:
            sweep_idle(session_workspaces(running), idle_seconds)
            del running
            time.sleep(every)

    threading.Thread(target=sweep_forever, name="nca-workspace-sweep", daemon=True).start()


def build_demo(models_dir: str | Path = MODELS_DIR, examples_dir: str | Path = EXAMPLES_DIR, train_concurrency: int | None = None) -> gr.Blocks:
    """The whole studio as a Blocks app with its queue set up; launch it with `launch_options()`."""
    with gr.Blocks(title="NCA texture studio", delete_cache=(3600, 6 * 3600)) as demo:
        gr.Markdown(INTRO, elem_id="nca-intro")
        with gr.Accordion("What is a neural cellular automaton?", open=False, elem_id="nca-about"):
            gr.Markdown(ABOUT)
        render_tabs(models_dir, examples_dir, train_concurrency)
    demo.queue(default_concurrency_limit=4)
    return demo
