"""The Neural Cellular Automaton: perception, update rule, stochastic cell update.

This is the reference definition; `fast.py` runs the very same step with less
overhead (fused weights, bfloat16, torch.compile, CUDA graphs), and tests hold
each of those paths equal to this one. A new model is the identity (its last
layer starts at zero), so an empty grid stays empty until it is trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

# Textbook 3x3 kernels. Sobel perception applies all four to every channel.
IDENTITY = [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
SOBEL_Y = [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]
LAPLACIAN = [[1.0, 2.0, 1.0], [2.0, -12.0, 2.0], [1.0, 2.0, 1.0]]
# Every 3x3 kernel unchanged by 90-degree turns and mirroring is a sum of these three
# (LAPLACIAN = 2 * CROSS + DIAGONAL), so a model that perceives only them has no sense
# of direction: it grows round things, never drifting or one-sided shapes.
CROSS_LAPLACIAN = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]
DIAGONAL_LAPLACIAN = [[1.0, 0.0, 1.0], [0.0, -4.0, 0.0], [1.0, 0.0, 1.0]]
PERCEPTIONS: dict[str, tuple[list[list[float]], ...]] = {
    "sobel": (IDENTITY, SOBEL_X, SOBEL_Y, LAPLACIAN),
    "isotropic": (IDENTITY, CROSS_LAPLACIAN, DIAGONAL_LAPLACIAN),
}
PERCEPTION_ABOUT = {  # for model cards: what a cell sees through
    "sobel": "identity, Sobel and Laplacian filters",
    "isotropic": "identity and Laplacian filters only (no sense of direction)",
}
MAX_CHANNELS = 64
MAX_HIDDEN = 1024


@dataclass(frozen=True)
class NCAConfig:
    """The architecture, and all of it: what config.json holds and what rebuilds a model from its folder."""

    channels: int = 12
    hidden: int = 96
    fire_rate: float = 0.5
    perception: str = "sobel"

    def __post_init__(self) -> None:
        """Refuse a config that would build a broken or absurd model (it also guards Hub pulls)."""
        for name, value, low, high in (("channels", self.channels, 3, MAX_CHANNELS), ("hidden", self.hidden, 1, MAX_HIDDEN)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
        rate = self.fire_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate <= 1.0:
            raise ValueError(f"fire_rate must be a number in (0, 1], got {rate!r}")
        if not isinstance(self.perception, str) or self.perception not in PERCEPTIONS:
            raise ValueError(f"perception must be one of {', '.join(PERCEPTIONS)}, got {self.perception!r}")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, NCAConfig] = {
    "texture": NCAConfig(channels=12, hidden=96),  # Self-Organising Textures' size: the best quality
    "fast": NCAConfig(channels=8, hidden=48),  # about twice as fast, for CPUs
    "seed": NCAConfig(channels=4, hidden=8),  # the original lesson's tiny model
}
# The one vocabulary of model sizes: `nca train --preset` and the studio's "Model size" both say these words.
PRESET_ABOUT: dict[str, str] = {
    "texture": "best quality, slowest (Self-Organising Textures' size)",
    "fast": "about twice as fast, a little less detail: for CPUs",
    "seed": "the original lesson's tiny model: quick but blurry",
}


class NCA(nn.Module):
    """A texture NCA: every cell perceives its 3x3 neighbourhood and updates itself."""

    def __init__(self, config: NCAConfig | None = None) -> None:
        super().__init__()
        self.config = config or NCAConfig()
        c, kernels = self.config.channels, torch.tensor(PERCEPTIONS[self.config.perception])  # (K, 3, 3)
        # One depthwise convolution: channel c gets the K kernels as outputs Kc..Kc+K-1.
        self.register_buffer("filters", kernels.repeat(c, 1, 1).unsqueeze(1), persistent=False)
        self.w1 = nn.Conv2d(len(kernels) * c, self.config.hidden, 1, bias=True)
        self.w2 = nn.Conv2d(self.config.hidden, c, 1, bias=False)
        nn.init.zeros_(self.w2.weight)

    def perceive(self, x: torch.Tensor) -> torch.Tensor:
        """Every channel through each of the perception's kernels, on a torus."""
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), self.filters.to(x.dtype), groups=self.channels)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """The change every cell would make, before the stochastic mask."""
        return self.w2(torch.relu(self.w1(self.perceive(x))))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One step: each cell applies its whole update with probability `fire_rate` (no rescaling)."""
        return x + self.update(x) * cell_mask(x, self.fire_rate, generator)

    def empty_grid(self, batch: int, height: int, width: int | None = None) -> torch.Tensor:
        """The starting state: all zeros (a mid-grey image)."""
        return torch.zeros(batch, self.channels, height, width or height, device=self.w1.weight.device)

    channels = property(lambda self: self.config.channels)
    hidden = property(lambda self: self.config.hidden)
    fire_rate = property(lambda self: self.config.fire_rate)
    perception = property(lambda self: self.config.perception)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def cell_mask(x: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 1, H, W): 1 for the cells that fire this step, one draw per cell (shared by its channels)."""
    return draw_masks(x, 1, rate, generator)[0]


def draw_masks(x: torch.Tensor, steps: int, rate: float | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(steps, B, 1, H, W) cell masks in one draw: on a CPU the very numbers of `steps` calls of `cell_mask`.

    `rate` may also be a (1, 1, H, W) tensor, a rate per cell (a graft's two rules).
    """
    b, _, h, w = x.shape
    return (torch.rand(steps, b, 1, h, w, generator=generator, device=x.device) < rate).to(x.dtype)


def to_rgb(x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """The visible image of a grid: its first three channels around mid-grey.

    Losses use `clamp=False` so that gradients still flow from cells out of range.
    """
    rgb = x[:, :3] + 0.5
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def preset_parameters(name: str, perception: str = "sobel") -> int:
    """How many numbers a preset's rule learns (fewer with isotropic perception, which has fewer kernels)."""
    return NCA(replace(PRESETS[name], perception=perception)).num_parameters


def preset_label(name: str, perception: str = "sobel") -> str:
    """One preset in the shared words: 'fast · 1,968 numbers · about twice as fast…'."""
    return f"{name} · {preset_parameters(name, perception):,} numbers · {PRESET_ABOUT[name]}"
