"""The training iteration as one CUDA graph (`graph_step`): its body held to the eager step, its guard, its fallback.

A CPU cannot capture CUDA graphs, but it runs the very body a graph records
(`GraphedIteration(capture=False)`): these tests hold that body to the eager
`Trainer.train_step` through whole runs (padded steps, re-injection, damage,
patch matching), and check what stands in for the host inside a graph (the
non-finite guard, in-place restores). The tests marked gpu run the
captured graph itself where a GPU is present.
"""

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nca_gradio.graph_step import CaptureUnavailable, GraphedIteration, load_optimizer_in_place, optimizer_tensors, set_lr
from nca_gradio.train import TrainConfig, Trainer

# Steps vary from 3 to 6 (the body pads to 6), a grid is damaged every 2nd iteration, and iteration 8 re-injects.
SMALL = {"preset": "fast", "loss": "patch", "size": 24, "target_size": 48, "batch": 2, "pool_size": 4, "steps_min": 3,
         "steps_max": 6, "damage_every": 2, "match_weight": 0.02, "iters": 10, "lr_decay_at": (0.5,)}


def trainer(target, device="cpu", **overrides) -> Trainer:
    return Trainer(target, TrainConfig(**{**SMALL, "device": device, **overrides}), log=lambda _: None)


def state_of(t: Trainer) -> list[torch.Tensor]:
    return [v.detach().clone().float().cpu() for v in (*optimizer_tensors(t.optimizer), t.pool)]


@pytest.mark.slow
def test_the_graph_body_trains_exactly_as_the_eager_step(pebbles_64):
    eager = trainer(pebbles_64)  # one run after the other: the loss draws its directions from the global generator
    eager_losses = [eager.train_step() for _ in range(10)][1:]
    graphed = trainer(pebbles_64)
    graphed.train_step()  # Adam's state is made by one eager iteration, as on CUDA
    graphed._graphed = GraphedIteration(graphed.parts, capture=False)
    graphed_losses = [graphed.train_step() for _ in range(9)]
    assert graphed._graphed.runs == 9 and graphed.iteration == eager.iteration == 10
    for a, b in zip(eager_losses, graphed_losses):
        assert a["rolled_back"] is b["rolled_back"] is False
        assert (b["loss"], b["texture"], b["overflow"]) == (a["loss"], a["texture"], a["overflow"])
    assert eager.optimizer.param_groups[0]["lr"] == graphed.optimizer.param_groups[0]["lr"]
    assert eager.optimizer.param_groups[0]["lr"] < SMALL.get("lr", TrainConfig.lr)  # the decay at iteration 5 was taken
    for a, b in zip(state_of(eager), state_of(graphed)):
        assert torch.equal(b, a)
    assert not torch.equal(eager.pool, torch.zeros_like(eager.pool))  # the pool was written back


class HostWaits(TorchDispatchMode):
    """Records the ops that make a CUDA stream wait for the host (a value read back, a data-dependent shape).

    Inside a graph capture each is an error, so a body that runs none of them on a CPU has none to fail on.
    Adam's step counter is read on the CPU only (on CUDA it is capturable, and stays on the device): `allowed`.
    """

    def __init__(self, allowed: list[torch.Tensor]) -> None:
        super().__init__()
        self.allowed = {id(t) for t in allowed}
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        aten = torch.ops.aten
        reads = func in (aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default)
        bool_index = func is aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1])
        if (reads and not (args and id(args[0]) in self.allowed)) or bool_index:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("match_weight", [0.0, 0.02])
def test_the_graph_body_never_waits_for_the_host(pebbles_64, match_weight):
    t = trainer(pebbles_64, match_weight=match_weight)
    t.train_step()
    graphed = GraphedIteration(t.parts, capture=False)
    graphed.load(t.draw())
    t.optimizer.zero_grad(set_to_none=True)
    steps = [state["step"] for state in t.optimizer.state.values()]
    with HostWaits(steps) as waits:
        graphed.body()
    assert waits.seen == []


def test_an_iteration_draws_distinct_pool_samples(pebbles_64):
    t = trainer(pebbles_64, pool_size=3)
    draws = [t.draw().idx.tolist() for _ in range(200)]
    assert all(len(set(d)) == len(d) == SMALL["batch"] for d in draws)
    assert {i for d in draws for i in d} == {0, 1, 2}


def test_steps_past_the_drawn_count_fire_no_cell(pebbles_64):
    t = trainer(pebbles_64)
    graphed = GraphedIteration(t.parts, capture=False)
    draw = t.draw()
    graphed.load(draw)
    assert draw.steps < SMALL["steps_max"] or draw.steps == SMALL["steps_max"]
    fired = (graphed.noise < 1.0).flatten(1).float().mean(1)  # a fire rate of 1 still fires no cell in the padding
    assert (fired[: draw.steps] > 0.9).all() and (fired[draw.steps :] == 0).all()
    assert (graphed.noise[: draw.steps] < t.config.fire_rate).float().mean() == pytest.approx(t.config.fire_rate, abs=0.05)


def test_a_non_finite_iteration_changes_nothing_inside_the_graph_body(pebbles_64):
    t = trainer(pebbles_64)
    t.train_step()
    graphed = GraphedIteration(t.parts, capture=False)
    t.pool.fill_(float("nan"))  # every grid poisoned: loss and gradients are NaN
    before = state_of(t)
    values = graphed.run(t.draw())
    assert values[3] == 0.0
    for a, b in zip(before, state_of(t)):
        torch.testing.assert_close(b, a, equal_nan=True, rtol=0, atol=0)


def test_rollback_restores_into_the_same_tensors(pebbles_64):
    t = trainer(pebbles_64)
    t.train_step()
    t._graphed = GraphedIteration(t.parts, capture=False)
    tensors = optimizer_tensors(t.optimizer)
    good = copy.deepcopy(t._last_good)  # taken before any step: Adam with no state
    t.pool.fill_(float("nan"))
    result = t.train_step()
    assert result["rolled_back"] and t.rollbacks == 1
    assert [x.data_ptr() for x in optimizer_tensors(t.optimizer)] == [x.data_ptr() for x in tensors]  # a graph still points at them
    for name, value in t.model.state_dict().items():
        torch.testing.assert_close(value, good["model"][name])
    assert all(float(v.abs().sum()) == 0.0 for s in t.optimizer.state.values() for v in s.values())  # zeros: a fresh Adam
    assert torch.isfinite(t.pool).all()  # the poisoned grids were cleared
    after = [t.train_step() for _ in range(3)]
    assert not any(r["rolled_back"] for r in after) and t.iteration == 4


def test_a_restored_adam_steps_as_a_fresh_one():
    params = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    fresh_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    used, fresh = torch.optim.Adam(params, lr=0.1), torch.optim.Adam(fresh_params, lr=0.1)
    empty = copy.deepcopy(used.state_dict())
    for p in params:
        p.grad = torch.randn_like(p)
    used.step()
    load_optimizer_in_place(used, empty)
    with torch.no_grad():
        for p, q in zip(params, fresh_params):
            p.copy_(q)
    for p, q in zip(params, fresh_params):
        p.grad = q.grad = torch.full_like(p, 0.5)
    used.step(), fresh.step()
    for p, q in zip(params, fresh_params):
        torch.testing.assert_close(p, q)


def test_set_lr_fills_a_tensor_lr_in_place():
    lr = torch.tensor(0.1)
    group = {"lr": lr}
    set_lr(group, 0.03)
    assert group["lr"] is lr and float(lr) == pytest.approx(0.03)
    plain = {"lr": 0.1}
    set_lr(plain, torch.tensor(0.5))
    assert plain["lr"] == 0.5 and isinstance(plain["lr"], float)


def test_on_a_cpu_the_trainer_steps_eagerly_and_capture_is_refused(pebbles_64):
    t = trainer(pebbles_64, iters=2)
    t.train()
    assert t.path == "eager" and t._graphed is None
    with pytest.raises(CaptureUnavailable, match="CUDA graphs need a CUDA device, not cpu"):
        GraphedIteration(t.parts)


@pytest.mark.gpu
def test_the_captured_graph_gives_the_eager_losses_on_cuda(pebbles_64):
    """The same seed, graphed and eager: the same losses within bfloat16 tolerance."""
    eager, graphed = trainer(pebbles_64, "cuda"), trainer(pebbles_64, "cuda")
    eager.cuda_graph = False
    a = [eager.train_step() for _ in range(6)]
    b = [graphed.train_step() for _ in range(6)]
    assert graphed.path == "cuda graph" and eager.path == "eager"
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=2e-2)


@pytest.mark.gpu
def test_a_refused_capture_falls_back_and_says_so(pebbles_64, monkeypatch):
    said = []
    t = Trainer(pebbles_64, TrainConfig(**{**SMALL, "device": "cuda"}), log=said.append)

    def refuse(*args, **kwargs):
        raise RuntimeError("capture refused here")

    monkeypatch.setattr(torch.cuda, "graph", refuse)
    results = [t.train_step() for _ in range(4)]
    assert not any(r["rolled_back"] for r in results) and t.iteration == 4
    assert t.path == "eager" and any("capture of the training iteration failed" in s for s in said)
