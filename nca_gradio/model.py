"""The Neural Cellular Automaton: perception, update rule, stochastic cell update.

The model knows nothing of training. A new model is the identity (its last
layer starts at zero), so an empty grid stays empty until it is trained.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

# Textbook 3x3 kernels. Perception applies all four to every channel.
IDENTITY = [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
SOBEL_Y = [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]
LAPLACIAN = [[1.0, 2.0, 1.0], [2.0, -12.0, 2.0], [1.0, 2.0, 1.0]]
KERNELS = (IDENTITY, SOBEL_X, SOBEL_Y, LAPLACIAN)
# Every 3x3 kernel that is unchanged by 90-degree turns and mirroring is a sum of
# these three (LAPLACIAN = 2 * CROSS + DIAGONAL): a model that perceives only them
# has no sense of direction, so it cannot grow the drifting, one-sided shapes
# (crescents, scales) that Sobel filters allow: scattered round things stay round
# (dense ones turn into mazes: RESEARCH.md, session 4).
CROSS_LAPLACIAN = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
DIAGONAL_LAPLACIAN = [[1.0, 0.0, 1.0], [0.0, -4.0, 0.0], [1.0, 0.0, 1.0]]
PERCEPTIONS: dict[str, tuple[list[list[float]], ...]] = {
    "sobel": KERNELS,
    "isotropic": (IDENTITY, CROSS_LAPLACIAN, DIAGONAL_LAPLACIAN),
}
PERCEPTION_ABOUT = {  # for model cards: what a cell sees through
    "sobel": "identity, Sobel and Laplacian filters",
    "isotropic": "identity and Laplacian filters only (no sense of direction)",
}

MAX_CHANNELS = 64
MAX_HIDDEN = 1024


@dataclass(frozen=True)
class Preset:
    """A named model size."""

    channels: int
    hidden: int
    about: str


PRESETS: dict[str, Preset] = {
    "texture": Preset(12, 96, "Self-Organising Textures size: best quality (the default)"),
    "fast": Preset(8, 48, "smaller and about twice as fast, for CPUs"),
    "seed": Preset(4, 8, "the original lesson's tiny model"),
}


# What save_pretrained writes as README.md when a folder has none: the mixin's default says
# "pushed to the Hub using PytorchModelHubMixin" and "[More Information Needed]" three times.
PLACEHOLDER_CARD = """---
{{ card_data }}
---

A Neural Cellular Automaton that grows a texture, made with [nca-gradio]({{ repo_url }}).
`nca push` (or `nca_gradio.hub.write_card`) replaces this card with one that shows a preview,
the training settings and the texture's quality.
"""


class NCA(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="nca-gradio",
    tags=["neural-cellular-automata", "texture-synthesis", "pytorch"],
    license="mit",
    repo_url="https://github.com/nca-gradio/nca-gradio",
    model_card_template=PLACEHOLDER_CARD,
):
    """A texture NCA: every cell perceives its 3x3 neighbourhood and updates itself.

    `config.json` holds exactly these constructor arguments, so a saved model
    rebuilds itself from its folder or Hub repo.
    """

    def __init__(
        self, channels: int = 12, hidden: int = 96, fire_rate: float = 0.5, perception: str = "sobel"
    ) -> None:
        super().__init__()
        validate_architecture(channels, hidden, fire_rate, perception)
        self.channels = channels
        self.hidden = hidden
        self.fire_rate = fire_rate
        self.perception = perception
        kernels = torch.tensor(PERCEPTIONS[perception])  # (K, 3, 3)
        self.kernels_per_channel = len(kernels)
        # One depthwise convolution: channel c gets the K kernels as outputs Kc..Kc+K-1.
        self.register_buffer("filters", kernels.repeat(channels, 1, 1).unsqueeze(1), persistent=False)
        self.w1 = nn.Conv2d(self.kernels_per_channel * channels, hidden, 1, bias=True)
        self.w2 = nn.Conv2d(hidden, channels, 1, bias=False)
        nn.init.zeros_(self.w2.weight)

    @classmethod
    def from_preset(cls, name: str, fire_rate: float = 0.5, perception: str = "sobel") -> "NCA":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        preset = PRESETS[name]
        return cls(channels=preset.channels, hidden=preset.hidden, fire_rate=fire_rate, perception=perception)

    @property
    def architecture(self) -> dict:
        """The constructor arguments (what config.json holds): `NCA(**model.architecture)` is an untrained twin."""
        return {"channels": self.channels, "hidden": self.hidden, "fire_rate": self.fire_rate, "perception": self.perception}

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def empty_grid(self, batch: int, height: int, width: int | None = None) -> torch.Tensor:
        """The starting state: all zeros (a mid-grey image)."""
        device = self.w1.weight.device
        return torch.zeros(batch, self.channels, height, width or height, device=device)

    def perceive(self, x: torch.Tensor) -> torch.Tensor:
        """Identity, Sobel x, Sobel y and Laplacian of every channel, on a torus."""
        padded = F.pad(x, (1, 1, 1, 1), mode="circular")
        return F.conv2d(padded, self.filters.to(x.dtype), groups=self.channels)

    def perception_weight(self) -> torch.Tensor:
        """w1 folded into the four kernels: a (hidden, channels, 3, 3) kernel with w1(perceive(x)) == conv(x, it).

        Both maps are linear, so one dense 3x3 convolution replaces the grouped
        convolution and the first 1x1: the 4C-channel perception is never
        written, read back, or kept for the backward pass.
        """
        c, k = self.channels, self.kernels_per_channel
        return torch.einsum("hck,ckij->hcij", self.w1.weight.view(self.hidden, c, k), self.filters.view(c, k, 3, 3))

    def step_weights(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What `update` multiplies by: worth computing once for a run of steps (one kernel less per step).

        `dtype` (bfloat16) makes `update` compute in it while the state stays float32: see `inference_dtype`.
        """
        weights = (self.perception_weight(), self.w1.bias, self.w2.weight.flatten(1))
        return weights if dtype is None else tuple(w.to(dtype) for w in weights)

    def update(self, x: torch.Tensor, weights: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """The change every cell would make, before the stochastic mask.

        Same numbers as w2(relu(w1(perceive(x)))) up to float rounding; computed
        channels-last (cells as rows), which oneDNN and cuDNN convolve fastest
        and which turns the last 1x1 into a plain matrix product. `weights`:
        `step_weights()`, when the caller steps many times.
        """
        kernel, bias, w2 = self.step_weights() if weights is None else weights
        x = x.contiguous(memory_format=torch.channels_last)
        hidden = torch.relu_(F.conv2d(circular_pad(x.to(kernel.dtype)), kernel, bias))
        return F.linear(hidden.permute(0, 2, 3, 1), w2).permute(0, 3, 1, 2).to(x.dtype)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        fire_rate: float | None = None,
    ) -> torch.Tensor:
        """One step: each cell applies its update with probability `fire_rate` (no rescaling)."""
        rate = self.fire_rate if fire_rate is None else fire_rate
        return self.step(x, cell_mask(x, rate, generator))

    def step(self, x: torch.Tensor, mask: torch.Tensor, weights: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """One step with a given (B, 1, H, W) mask of the cells that fire.

        The state comes back channels-last, so later steps need no layout copy.
        """
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.addcmul(x, self.update(x, weights), mask)

    def rollout(
        self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        for _ in range(steps):
            x = self(x, generator)
        return x


def circular_pad(x: torch.Tensor) -> torch.Tensor:
    """Pad one cell on every side from the opposite edge (a torus); keeps channels-last, unlike F.pad."""
    x = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
    return torch.cat([x[..., -1:, :], x, x[..., :1, :]], dim=-2)


def cell_mask(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """One Bernoulli draw per cell (shared by all its channels)."""
    return draw_masks(x, 1, rate, generator)[0]


def to_rgb(x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """The visible image of a grid: its first three channels around mid-grey.

    Losses use `clamp=False` so that gradients still flow from cells out of range.
    """
    rgb = x[:, :3] + 0.5
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def validate_architecture(channels: int, hidden: int, fire_rate: float, perception: str = "sobel") -> None:
    """Refuse a config that would build a broken or absurd model (also guards Hub pulls)."""
    for name, value, low, high in (("channels", channels, 3, MAX_CHANNELS), ("hidden", hidden, 1, MAX_HIDDEN)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    if isinstance(fire_rate, bool) or not isinstance(fire_rate, (int, float)) or not 0.0 < fire_rate <= 1.0:
        raise ValueError(f"fire_rate must be a number in (0, 1], got {fire_rate!r}")
    if perception not in PERCEPTIONS:
        raise ValueError(f"perception must be one of {', '.join(PERCEPTIONS)}, got {perception!r}")


# ----------------------------------------------------------------------------- fast paths
# The plain step above is the reference; these only run it with less overhead.


def draw_masks(x: torch.Tensor, steps: int, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """(steps, B, 1, H, W) cell masks in one draw: on CPU the very numbers `steps` calls of `cell_mask` give."""
    b, _, h, w = x.shape
    noise = torch.rand(steps, b, 1, h, w, generator=generator, device=x.device)
    return (noise < rate).to(x.dtype)


PRECISIONS = ("auto", "float32", "bfloat16")
BF16_MIN_HIDDEN = 32  # below this the casts cost more than bfloat16 saves


def inference_dtype(model: NCA, device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The dtype that growing computes updates in: None for float32.

    "auto" takes bfloat16 on CPUs with native bfloat16 matrix units (AMX or
    AVX512-BF16), where oneDNN runs the texture preset's step about 2.4x
    faster (tiny models, like the seed preset, only pay for the casts); the state
    itself stays float32, so rounding does not pile up over thousands of
    steps, and the texture is the same texture (its score moves by about as
    much as another seed's). Elsewhere, and with "float32", float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    native = torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16_units()
    return torch.bfloat16 if native and model.hidden >= BF16_MIN_HIDDEN else None


def training_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The dtype a training rollout autocasts to: None for float32.

    "auto" is bfloat16 on CUDA (the GPU recipe since the lesson) and float32
    elsewhere. On a CPU with bfloat16 units, "bfloat16" makes an iteration of
    the texture preset about 1.5x faster, but in two trials of bundled
    recipes it trained worse textures than float32 (RESEARCH.md, session 8),
    so a CPU asks for it explicitly. The weights, the state between steps and
    the loss stay float32 either way.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16" or (precision == "auto" and torch.device(device).type == "cuda"):
        return torch.bfloat16
    return None


def dtype_name(dtype: torch.dtype | None) -> str:
    """How training.json and model cards name a compute dtype (None: float32)."""
    return "bfloat16" if dtype == torch.bfloat16 else "float32"


@functools.cache
def _cpu_has_bf16_units() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:  # not Linux: stay with float32
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def apply_steps(model: NCA, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """One step per mask: the unit that training and `Grower` hand to torch.compile."""
    weights = model.step_weights()  # the same for every step
    for mask in masks.unbind(0):
        x = model.step(x, mask, weights)
    return x


def compile_steps(
    model: NCA,
    probe: Callable[[Callable], object] | None = None,
    log: Callable[[str], None] = warnings.warn,
    mode: str | None = None,
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], bool]:
    """`apply_steps` for this model through torch.compile, or the plain loop where compiling fails.

    torch.compile fails late (at the first call, or the first backward) and on
    some hosts always (no compiler, ZeroGPU), so `probe(fn)` should run fn the
    way the caller will; any error there gives the plain loop. A later error at
    a call also falls back, once and for good. `mode` is torch.compile's
    ("reduce-overhead": CUDA graphs of the compiled forward and backward).
    Returns (fn, compiled?).
    """

    def plain(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return apply_steps(model, x, masks)

    try:
        compiled = torch.compile(plain, dynamic=False, mode=mode)
        if probe is not None:
            probe(compiled)
    except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
        log(f"torch.compile is not usable here, stepping eagerly ({type(exc).__name__}: {str(exc)[:200]})")
        return plain, False
    state = {"fn": compiled}

    def guarded(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if state["fn"] is not plain:
            try:
                return state["fn"](x, masks)
            except Exception as exc:  # noqa: BLE001
                log(f"compiled steps failed, stepping eagerly from now on ({type(exc).__name__})")
                state["fn"] = plain
        return plain(x, masks)

    return guarded, True


class Grower:
    """Steps grids many times without autograd, for rendering and benchmarks.

    On CUDA it records `chunk` steps once as a CUDA graph and replays it (one
    launch per chunk instead of about a dozen per step), optionally through
    torch.compile (compiled `unit` steps at a time: compile time grows with the
    unrolled length); anything unavailable falls back to the plain step loop,
    and `path` says which ran. Masks come from one draw per chunk: on CPU the
    same numbers as `model.rollout` with the same generator, on CUDA the same
    distribution.
    """

    def __init__(self, model: NCA, chunk: int = 32, cuda_graph: bool = True, compile: bool = False, unit: int = 8,
                 log: Callable[[str], None] = warnings.warn) -> None:
        self.model = model.eval()
        self.chunk = chunk
        self.unit = unit
        self.use_graph = cuda_graph
        self.log = log
        self.steps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = self._plain
        self.compiled = False
        if compile:
            self.steps_fn, self.compiled = compile_steps(model, log=log)
        self._graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor, "torch.cuda.CUDAGraph"]] = {}

    @property
    def path(self) -> str:
        parts = (["cuda graph"] if self._graphs else []) + (["torch.compile"] if self.compiled else [])
        return " + ".join(parts) or "eager"

    @torch.no_grad()
    def run(self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        done = 0
        graphed = self._graph(x) if x.is_cuda and self.use_graph and steps >= self.chunk else None
        if graphed is not None:
            state, noise, graph = graphed
            state.copy_(x)
            while steps - done >= self.chunk:
                noise.uniform_(generator=generator)
                graph.replay()
                done += self.chunk
            x = state.clone()
        while done < steps:
            n = min(self.chunk, steps - done)
            x = self._advance(x, draw_masks(x, n, self.model.fire_rate, generator))
            done += n
        return x

    def _plain(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return apply_steps(self.model, x, masks)

    def _advance(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """All the masks' steps, `unit` at a time; a shorter tail runs plainly (no recompiling for it)."""
        for start in range(0, len(masks), self.unit):
            part = masks[start : start + self.unit]
            x = (self.steps_fn if len(part) == self.unit else self._plain)(x, part)
        return x

    def _graph(self, x: torch.Tensor) -> tuple | None:
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self._graphs:
            try:
                self._graphs[key] = self._capture(x)
            except Exception as exc:  # noqa: BLE001 - no graphs here: step eagerly
                if self.compiled:  # retry without the compiler before giving graphs up
                    self.log(f"CUDA graph capture of compiled steps failed, capturing plain ones ({type(exc).__name__})")
                    self.steps_fn, self.compiled = self._plain, False
                    return self._graph(x)
                self.log(f"CUDA graph capture failed, stepping eagerly ({type(exc).__name__}: {str(exc)[:200]})")
                self.use_graph = False
                return None
        return self._graphs[key]

    def _capture(self, x: torch.Tensor) -> tuple:
        b, _, h, w = x.shape
        state = x.detach().contiguous(memory_format=torch.channels_last).clone()
        noise = torch.rand(self.chunk, b, 1, h, w, device=x.device)
        rate = self.model.fire_rate

        def body() -> None:
            state.copy_(self._advance(state, (noise < rate).to(state.dtype)))

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3 if self.compiled else 1):  # warm up: cuDNN picks its kernels, torch.compile compiles
                body()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            body()
        return state, noise, graph
