"""The model's step with less overhead: the same numbers as `NCA.forward`, up to float rounding.

Perception and the first 1x1 layer are both linear, so they fold into one dense
3x3 convolution; the state is kept channels-last, which oneDNN and cuDNN
convolve fastest. On top: bfloat16 arithmetic (`precision.py` decides where),
torch.compile, and CUDA graphs that replay many steps as one launch. Tests hold
every path here equal to the reference in `model.py`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .model import NCA, draw_masks

StepWeights = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def perception_weight(model: NCA) -> torch.Tensor:
    """w1 folded into the perception kernels: a (hidden, channels, 3, 3) kernel with w1(perceive(x)) == conv(x, it).

    The perception's K x C channels are then never written, read back, or kept for the backward pass.
    """
    c, h = model.channels, model.hidden
    k = model.filters.shape[0] // c
    return torch.einsum("hck,ckij->hcij", model.w1.weight.view(h, c, k), model.filters.view(c, k, 3, 3))


def step_weights(model: NCA, dtype: torch.dtype | None = None) -> StepWeights:
    """What `update` multiplies by, worth computing once for a run of steps; `dtype` (bfloat16) computes in it."""
    weights = (perception_weight(model), model.w1.bias, model.w2.weight.flatten(1))
    return weights if dtype is None else tuple(w.to(dtype) for w in weights)


def circular_pad(x: torch.Tensor) -> torch.Tensor:
    """Pad one cell on every side from the opposite edge (a torus); keeps channels-last, unlike F.pad."""
    x = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
    return torch.cat([x[..., -1:, :], x, x[..., :1, :]], dim=-2)


def update(model: NCA, x: torch.Tensor, weights: StepWeights | None = None) -> torch.Tensor:
    """`model.update(x)`, channels-last through the folded kernel; the last 1x1 is a plain matrix product."""
    kernel, bias, w2 = step_weights(model) if weights is None else weights
    x = x.contiguous(memory_format=torch.channels_last)
    hidden = torch.relu_(F.conv2d(circular_pad(x.to(kernel.dtype)), kernel, bias))
    return F.linear(hidden.permute(0, 2, 3, 1), w2).permute(0, 3, 1, 2).to(x.dtype)


def step(model: NCA, x: torch.Tensor, mask: torch.Tensor, weights: StepWeights | None = None) -> torch.Tensor:
    """One step with a given (B, 1, H, W) mask of the cells that fire; the state comes back channels-last."""
    x = x.contiguous(memory_format=torch.channels_last)
    return torch.addcmul(x, update(model, x, weights), mask)


def apply_steps(model: NCA, x: torch.Tensor, masks: torch.Tensor, weights: StepWeights | None = None) -> torch.Tensor:
    """One step per mask of (steps, B, 1, H, W): the step loop of training, growing and compiling."""
    weights = step_weights(model) if weights is None else weights
    for mask in masks.unbind(0):
        x = step(model, x, mask, weights)
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
    """Steps grids many times without autograd, for rendering on a GPU and benchmarks.

    On CUDA it records `chunk` steps once as a CUDA graph and replays it (one
    launch per chunk instead of about a dozen per step), optionally through
    torch.compile (compiled `unit` steps at a time: compile time grows with the
    unrolled length); anything unavailable falls back to the plain step loop,
    and `path` says which ran. Masks come from one draw per chunk: on CPU the
    very masks of one `cell_mask` per step with the same generator, on CUDA the
    same distribution.
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
        self._graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.cuda.CUDAGraph]] = {}

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
