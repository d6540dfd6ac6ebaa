"""The original lesson's NCA and training loop, reimplemented faithfully: the speed baseline.

Its defects are kept on purpose, since they are part of what it costs and
does: the typo'd Sobel kernel (`[-2, 1, 2]`, `0.1`), the Laplacian as fourth
filter, per-channel filtering through a reshape to a batch of 1-channel
images, `F.dropout` as the update mask (per channel, rescaled by 2, and on
even at inference), ImageNet normalisation applied twice to the target,
`len(x) < 4` where `x.ndim < 4` is meant, and three `.item()` syncs plus an
`assert` sync per iteration. Left out, because they cost nothing per
iteration or are not the recipe: the matplotlib plot every 100 iterations and
the progress bar. `einops.rearrange("b c h w -> (b c) h w")` is the plain
reshape it amounts to. Pretrained VGG16 cannot be downloaded here; a randomly
initialised one costs the same.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn, tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TARGET_LAYERS = (1, 6, 11, 18, 25)


def lesson_filters(device: torch.device | str = "cpu") -> torch.Tensor:
    """The lesson's four 3x3 filters, typos included: (4, 3, 3)."""
    identity = tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    grad = tensor([[-1.0, 0.0, 1.0], [-2.0, 1.0, 2.0], [-1.0, 0.0, 0.1]])  # a Sobel x with two typos
    laplacian = tensor([[1.0, 2.0, 1.0], [2.0, -12.0, 2.0], [1.0, 2.0, 1.0]])  # the lesson calls it a Sobel
    return torch.stack([identity, grad, grad.T, laplacian]).to(device)


def make_grid(n: int, sz: int = 128, channels: int = 4, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.zeros(n, channels, sz, sz).to(device)


def apply_filters(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Every channel as its own 1-channel image through all filters, on a torus."""
    b, c, w, h = x.shape
    y = x.reshape(b * c, w, h).unsqueeze(1)
    y = F.pad(y, (1, 1, 1, 1), "circular")
    y = F.conv2d(y, filters.unsqueeze(1))
    return y.reshape(b, -1, w, h)


class LessonNCA(nn.Module):
    """The lesson's `NCA(Brain)`: filters, two 1x1 convolutions, dropout as the stochastic update."""

    def __init__(self, nh: int = 8, nc: int = 4, nf: int = 4, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Conv2d(nc * nf, nh, kernel_size=1), nn.ReLU(), nn.Conv2d(nh, nc, kernel_size=1, bias=False)]
        )
        self.register_buffer("filters", lesson_filters(device))  # the lesson keeps them in a global

    @torch.no_grad()
    def init_(self) -> None:
        self.layers[-1].weight.data.zero_()

    def forward(self, grid: torch.Tensor, update_rate: float = 0.5) -> torch.Tensor:
        y = apply_filters(grid, self.filters)
        for layer in self.layers:
            y = layer(y)
        y = F.dropout(y, update_rate)  # training=True by default: always on, per channel, times 2
        return grid + y


def inference_step(model: LessonNCA, x: torch.Tensor) -> torch.Tensor:
    """How the lesson grows a texture: `x = model(x)` (the bench adds no_grad, which the lesson did not)."""
    return model(x)


def pt_normalize_imagenet(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    return x[:, :3, :, :] + 0.5


class StyleLoss:
    """The lesson's Gram loss at VGG16 `features` layers 1, 6, 11, 18, 25."""

    def __init__(self, target_img: torch.Tensor, vgg: nn.Module, target_layers: tuple[int, ...] = TARGET_LAYERS) -> None:
        self.vgg = vgg
        for p in self.vgg.parameters():
            p.requires_grad = False
        self.target_layers = target_layers
        with torch.no_grad():
            self.tgt = self.grams(target_img)

    def grams(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = pt_normalize_imagenet(x)
        if len(x) < 4:  # the lesson's check: the batch size, where x.ndim was meant
            x = x.unsqueeze(0)
        grams_ = []
        for i, layer in enumerate(self.vgg.features[: max(self.target_layers) + 1]):
            _, _, h, w = x.shape
            x = layer(x)
            if i in self.target_layers:
                f = x.clone()
                grams_.append(torch.einsum("bchw, bdhw -> bcd", f, f) / (h * w))
        return grams_

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        src = self.grams(img)
        return sum((f1 - f2).pow(2).mean() for f1, f2 in zip(src, self.tgt))


class LessonTrainer:
    """The lesson's `train()` loop, one iteration per `train_step` call.

    `style_img` is a (3, H, W) image in [0, 1]; like the lesson, it is ImageNet
    normalised here and again inside the loss. `vgg` is a timm VGG16 (with `.features`).
    """

    def __init__(
        self,
        style_img: torch.Tensor,
        vgg: nn.Module,
        style_loss_scale: float = 0.1,
        n: int = 128,
        sz: int = 256,
        bs: int = 4,
        lr: float = 1e-3,
        model_application_iterations: tuple[int, int] = (32, 96),
        nh: int = 8,
        nc: int = 4,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.nca = LessonNCA(nh=nh, nc=nc, device=self.device).to(self.device)
        self.nca.init_()
        self.n, self.sz, self.bs, self.nc = n, sz, bs, nc
        self.style_loss_scale = style_loss_scale
        self.model_application_iterations = model_application_iterations
        self.pool = make_grid(n, sz=sz, channels=nc, device=self.device)
        target = pt_normalize_imagenet(style_img.to(self.device))  # the first of two normalisations
        self.loss_f = StyleLoss(target, vgg.to(self.device))
        self.opt = torch.optim.Adam(self.nca.parameters(), lr)
        self.losses: list[tuple[float, float, float]] = []
        self.i = 0

    def train_step(self, n_iterations: int | None = None) -> float:
        """One iteration of the lesson's loop; `n_iterations` pins the rollout length (else 32..96)."""
        subpool_idxs = torch.randint(0, self.n, (self.bs,))
        subpool = self.pool[subpool_idxs]
        if random.random() > 0.8:
            subpool[:1] = make_grid(1, sz=self.sz, channels=self.nc, device=self.device)
        if n_iterations is None:
            min_, max_ = self.model_application_iterations
            n_iterations = random.randrange(min_, max_ + 1)
        for _ in range(n_iterations):
            subpool = self.nca(subpool)
        if self.i > 0:
            assert not (subpool == 0).all()
        with torch.no_grad():
            self.pool[subpool_idxs] = subpool
        style_loss = self.loss_f(to_rgb(subpool)) * self.style_loss_scale
        overflow_loss = (subpool - subpool.clamp(-1.0, 1.0)).abs().sum()
        loss = style_loss + overflow_loss
        self.losses.append((loss.item(), style_loss.item(), overflow_loss.item()))
        loss.backward()
        for p in self.nca.parameters():
            p.grad /= p.grad.norm() + 1e-8
        self.opt.step()
        self.opt.zero_grad()
        self.i += 1
        return self.losses[-1][0]
