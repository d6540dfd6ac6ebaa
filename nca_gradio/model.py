"""The Neural Cellular Automaton: perception, update rule, stochastic cell update.

The model knows nothing of training. A new model is the identity (its last
layer starts at zero), so an empty grid stays empty until it is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class NCA(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="nca-gradio",
    tags=["neural-cellular-automata", "texture-synthesis", "pytorch"],
    license="mit",
    repo_url="https://github.com/nca-gradio/nca-gradio",
):
    """A texture NCA: every cell perceives its 3x3 neighbourhood and updates itself.

    `config.json` holds exactly these constructor arguments, so a saved model
    rebuilds itself from its folder or Hub repo.
    """

    def __init__(self, channels: int = 12, hidden: int = 96, fire_rate: float = 0.5) -> None:
        super().__init__()
        validate_architecture(channels, hidden, fire_rate)
        self.channels = channels
        self.hidden = hidden
        self.fire_rate = fire_rate
        kernels = torch.tensor(KERNELS)  # (4, 3, 3)
        # One depthwise convolution: channel c gets the 4 kernels as outputs 4c..4c+3.
        self.register_buffer("filters", kernels.repeat(channels, 1, 1).unsqueeze(1), persistent=False)
        self.w1 = nn.Conv2d(4 * channels, hidden, 1, bias=True)
        self.w2 = nn.Conv2d(hidden, channels, 1, bias=False)
        nn.init.zeros_(self.w2.weight)

    @classmethod
    def from_preset(cls, name: str, fire_rate: float = 0.5) -> "NCA":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        preset = PRESETS[name]
        return cls(channels=preset.channels, hidden=preset.hidden, fire_rate=fire_rate)

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

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """The change every cell would make, before the stochastic mask."""
        return self.w2(torch.relu(self.w1(self.perceive(x))))

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        fire_rate: float | None = None,
    ) -> torch.Tensor:
        """One step: each cell applies its update with probability `fire_rate` (no rescaling)."""
        rate = self.fire_rate if fire_rate is None else fire_rate
        return self.step(x, cell_mask(x, rate, generator))

    def step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One step with a given (B, 1, H, W) mask of the cells that fire."""
        return x + self.update(x) * mask

    def rollout(
        self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        for _ in range(steps):
            x = self(x, generator)
        return x


def cell_mask(x: torch.Tensor, rate: float, generator: torch.Generator | None) -> torch.Tensor:
    """One Bernoulli draw per cell (shared by all its channels)."""
    b, _, h, w = x.shape
    noise = torch.rand(b, 1, h, w, generator=generator, device=x.device)
    return (noise < rate).to(x.dtype)


def to_rgb(x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """The visible image of a grid: its first three channels around mid-grey.

    Losses use `clamp=False` so that gradients still flow from cells out of range.
    """
    rgb = x[:, :3] + 0.5
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def validate_architecture(channels: int, hidden: int, fire_rate: float) -> None:
    """Refuse a config that would build a broken or absurd model (also guards Hub pulls)."""
    for name, value, low, high in (("channels", channels, 3, MAX_CHANNELS), ("hidden", hidden, 1, MAX_HIDDEN)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    if isinstance(fire_rate, bool) or not isinstance(fire_rate, (int, float)) or not 0.0 < fire_rate <= 1.0:
        raise ValueError(f"fire_rate must be a number in (0, 1], got {fire_rate!r}")
