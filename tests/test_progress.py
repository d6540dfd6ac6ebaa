"""Progress you can believe: a time-budgeted run's status shows a total only once its speed is measured, and that
total holds to the end, in the studio's status line and in `nca train`'s bar; the loss shown is the recent median.

The statuses come from a real tiny run (helpers.TINY), read by the studio's own `train_status`.
"""

from __future__ import annotations

import re
import statistics

import pytest

from nca_gradio.images import load_target
from nca_gradio.train import Status, Trainer
from nca_gradio.ui import train_status

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out

BUDGET = 4.0  # seconds: long enough to measure the speed on a busy CPU, short for a test
BAR_MAX = re.compile(r'<progress max="([\d.]+)"')


@pytest.fixture(scope="module")
def budgeted_statuses(pebbles_path, tiny_config) -> list[Status]:
    """Every Status a tiny run with a time budget reports, then the one it ends with."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seen = []
        trainer = Trainer(load_target(pebbles_path, 64), tiny_config(iters=5000, time_budget=BUDGET), log=lambda m: None)
        final = trainer.train(callback=seen.append, preview_every=10**6)
    finally:
        torch.set_num_threads(threads)
    return [*seen, final]


def test_the_studio_shows_no_total_until_the_speed_is_measured_then_one_that_holds(budgeted_statuses):
    lines = [train_status(status) for status in budgeted_statuses]
    totals = [BAR_MAX.search(line) for line in lines]
    first_total = next((i for i, found in enumerate(totals) if found), None)
    assert first_total, "a total was shown before the speed was measured, or never"
    for line in lines[:first_total]:
        assert "measuring speed" in line and " left" not in line and " of " not in line, line
    shown = [float(found.group(1)) for found in totals[first_total:]]
    assert None not in totals[first_total:], "the total disappeared after it was shown"
    assert shown[0] == shown[-1] == BUDGET, shown  # tolerance 0: the total is the budget, which does not move
    assert f"of the {BUDGET:.0f} s time limit" in lines[-1]


def test_the_status_reads_the_recent_median_loss_and_explains_a_spike(budgeted_statuses):
    from nca_gradio.train import SMOOTHING

    for status in budgeted_statuses:
        textures = [h["texture"] for h in status.history[-SMOOTHING:]]
        assert status.recent_texture_loss == statistics.median(textures)
    grown = budgeted_statuses[-1]
    calm = grown.history[-1]["texture"]
    spiked = Status(**{**vars(grown), "history": [*grown.history, {"iteration": grown.iteration + 1, "loss": calm * 100,
                                                                    "texture": calm * 100, "overflow": 50.0}]})
    line = train_status(spiked)
    assert spiked.spiking and "keep its cells in range" in line, line


def test_the_cli_bar_shows_no_total_until_measured_then_the_time_limit(tmp_path, pebbles_path, tiny_flags):
    from helpers import nca

    result = nca("train", pebbles_path, "-o", tmp_path / "m", *tiny_flags(iters=5000), "--time", f"{BUDGET:g}s", timeout=240)
    assert result.returncode == 0, result.stderr
    frames = [frame for frame in re.split(r"[\r\n]", result.stderr) if "it=" in frame or "|" in frame]  # the bar once it reports
    totals = [re.search(r"\| *[\d.]+/([\d.]+)", frame) for frame in frames]
    first_total = next((i for i, found in enumerate(totals) if found), None)
    assert first_total, f"the bar showed a total before the speed was measured, or never: {frames[:3]}"
    assert all("measuring speed" in frame for frame in frames[:first_total]), frames[:first_total]
    shown = {found.group(1) for found in totals[first_total:] if found}
    assert shown == {f"{BUDGET:g}"}, shown  # one total from its first showing to the end: the time limit
    assert "median of the last" in result.stderr and "keep its cells in range" in result.stderr
