"""The learning-rate schedule, and with a time budget the run's length fitted to the measured speed.

A budgeted run does not know how many iterations it will get until it has timed a few: it plans
from the pace after `BUDGET_WARMUP` iterations and moves the lr decays with the plan, so it
decays at the same fractions of its length as a run of fixed iterations.
"""

from __future__ import annotations

from collections import Counter

import torch

from .graph_step import set_lr
from .train_config import TrainConfig

BUDGET_WARMUP = 5  # iterations before the speed is measured: the first ones compile, warm caches and allocate
DECAY = 0.3  # the lr is multiplied by this at each milestone


def fitted_milestones(milestones: Counter, done: int, fractions: tuple[float, ...], planned: int) -> Counter:
    """lr milestones for a run now planned at `planned` iterations, `done` of them done.

    Milestones already passed stay; the others sit at their fractions of the new
    plan, never in the past, so a budgeted run decays its lr at the same fractions
    of its length as a run of fixed iterations.
    """
    passed = [m for m in milestones.elements() if m <= done]
    ahead = [max(done + 1, int(f * planned)) for f in sorted(fractions)[len(passed):]]
    return Counter(passed + ahead)


class Schedule:
    """The lr decays (a `MultiStepLR`) and the planned length of the run."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig) -> None:
        self.config = config
        milestones = sorted({max(1, int(f * config.iters)) for f in config.lr_decay_at})
        self.lr = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=DECAY)
        self.planned = config.iters  # with a time budget, fitted to the measured speed as the run goes
        self._warm: tuple[int, float] | None = None  # (iteration, seconds) when the speed began to be measured
        self._fitted = False

    @property
    def measured(self) -> bool:
        """The plan is final in kind: a run of fixed iterations, or a budgeted one whose plan has been fitted to its speed."""
        return not self.config.time_budget or self._fitted

    @property
    def milestones(self) -> Counter:
        return self.lr.milestones

    def step(self) -> None:
        self.lr.step()

    def spent(self, seconds: float) -> bool:
        """The time budget, if any, is used up."""
        return bool(self.config.time_budget and seconds >= self.config.time_budget)

    def fit(self, iteration: int, seconds: float) -> None:
        """With a time budget, plan the iterations that fit the time left, and move the lr milestones with the plan."""
        budget = self.config.time_budget
        if not budget:
            return
        if self._warm is None:
            if iteration >= BUDGET_WARMUP:
                self._warm = (iteration, seconds)
            return
        rate = (iteration - self._warm[0]) / max(seconds - self._warm[1], 1e-9)
        self.planned = max(iteration, min(self.config.iters, iteration + int((budget - seconds) * rate)))
        self._fitted = True
        self.lr.milestones = fitted_milestones(self.lr.milestones, self.lr.last_epoch, self.config.lr_decay_at, self.planned)

    def resume(self, iteration: int, milestones: list[int] | None = None, planned: int | None = None) -> None:
        """Continue at `iteration`: a budgeted run keeps the plan its checkpoint recorded; the lr is what the decays so far left.

        The lr is recomputed from `config.lr`, so a resume with a new lr applies it from here on.
        """
        if self.config.time_budget and milestones is not None and planned is not None:
            self.lr.milestones = Counter(milestones)
            self.planned = max(iteration, min(self.config.iters, planned))
        passed = sum(count for m, count in self.lr.milestones.items() if m <= iteration)
        for group in self.lr.optimizer.param_groups:
            set_lr(group, self.config.lr * DECAY**passed)
        self.lr.last_epoch = iteration
