"""What a trained model learned, in plain words: grown as its user will grow it and scored as `nca score` does.

Every run's end reads the same `Verdict`: the last lines of `nca train`, the studio's final status, the card
and train-many's summary. The texture is grown once, from an empty grid for `GROWN_STEPS` steps (a texture that
only looks right early, then drifts, is caught), and that one rollout also gives the card its preview.

The thresholds are ratios of `quality.score` (1.0: as close as the target is to itself). Calibrated on this
CPU, grown 1,024 steps at 128 px in float32: the bundled models score 0.70 to 1.54 combined, with colour at most
1.30, fine patches at most 1.14, coarse patches at most 1.12 and spectrum at most 2.42; models trained for 2 to
24 iterations score 12 to 26, with colour 23 to 32 and fine patches 12 to 20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .images import ImageError, image_to_tensor, load_image
from .model import NCA, to_rgb
from .model_folder import TARGET_FILE, read_training_log
from .quality import Score, score
from .render import Rollout, grow

GROWN_SIZE, GROWN_STEPS, GROWN_SEED, GROWN_PRECISION, GROWN_EVERY = 128, 1024, 0, "float32", 4
GROWN_SETTINGS = f"grown {GROWN_STEPS:,} steps at {GROWN_SIZE} px from an empty grid, seed {GROWN_SEED}, {GROWN_PRECISION}"
REPEAT_LINE = (f"nca grow MODEL --size {GROWN_SIZE} --steps {GROWN_STEPS} --seed {GROWN_SEED} --precision {GROWN_PRECISION} "
               "-o grown.png && nca score grown.png MODEL/target.png")
RECIPE_ITERS = 500  # the CPU's default recipe (TrainConfig.iters): what "train longer" aims at when the run asked for less

LEARNED, PARTLY, NOT_LEARNED, NOT_MEASURED = "learned", "partly learned", "not learned yet", "not measured"
PART_LEARNED = 2.0  # a part within twice the target's own variation came through (bundled models: at most 1.30)
SPECTRUM_LEARNED = 3.5  # the spectrum is the noisiest part (bundled models: up to 2.42; short runs: 2 to 87)
NOISE = 5.0  # combined above this with no part learned: noise (short runs score 12 and more)
SHAPES_FAR = 2.5  # shape ratio above this: outlined regions unlike the target's (other bundled models: at most 2.46; citrus
# grown as orange scales without slices: 3.10; pebbles grown as a speckle: 3.40; RESEARCH.md, third session)


@dataclass(frozen=True)
class Verdict:
    """What a run's model learned: a word for summaries, a sentence for people, advice, and the figure behind them."""

    word: str
    sentence: str
    score: Score | None = None
    advice: str = ""
    goal: int = 0  # with advice: the iterations to train to
    minutes: int = 0  # with advice: about how long that takes at the run's pace (0: not known)

    def figure(self) -> str:
        """The score with its parts and how it was measured, in one line."""
        if self.score is None:
            return ""
        s = self.score
        return (f"score {s.combined:.2f} (colour {s.colour:.2f}, grain {s.per_scale[0]:.2f}, larger patterns {s.per_scale[-1]:.2f}, "
                f"spectrum {s.spectrum:.2f}, shapes {s.shape:.2f}; 1.0 is as close as the target is to itself, lower is better), {GROWN_SETTINGS}")

    def lines(self) -> list[str]:
        """The verdict as a few lines: the sentence, the figure, the advice."""
        return [f"verdict: {self.sentence}"] + [line for line in (self.figure(), self.advice) if line]


def grow_for_verdict(model: NCA) -> Rollout:
    """The texture as its user will grow it: 1,024 steps from an empty 128 px grid, seed 0, float32, every 4th frame kept."""
    return grow(model, size=GROWN_SIZE, steps=GROWN_STEPS, every=GROWN_EVERY, seed=GROWN_SEED, precision=GROWN_PRECISION)


def grown_score(folder: Path, rollout: Rollout | None) -> Score | str | None:
    """The grown texture's score against the folder's target; the reason as text when it cannot be measured; None without a target."""
    if rollout is None or not (folder / TARGET_FILE).exists():
        return None
    try:
        return score(to_rgb(rollout.state.float()), image_to_tensor(load_image(folder / TARGET_FILE)))
    except (ImageError, ValueError) as exc:
        return str(exc)


def came_through(s: Score) -> dict[str, bool]:
    """Which of colours, grain (the finest patches) and larger patterns (the coarsest patches and the spectrum) are close to the target.

    None of these sees whole objects (a cup, a citrus slice): the verdict says so rather than claim shapes it cannot see.
    """
    def ok(value: float, limit: float = PART_LEARNED) -> bool:
        return math.isfinite(value) and value <= limit  # a NaN texture learned nothing

    return {"colours": ok(s.colour), "grain": ok(s.per_scale[0]),
            "larger patterns": ok(s.per_scale[-1]) and ok(s.spectrum, SPECTRUM_LEARNED)}


def judge(quality: Score | str | None) -> tuple[str, str]:
    """The verdict's word and sentence for a score (or the reason it could not be measured)."""
    if not isinstance(quality, Score):
        return NOT_MEASURED, f"not measured: {quality}" if quality else "not measured: the folder has no target.png"
    parts = came_through(quality)
    learned = [name for name, ok in parts.items() if ok]
    missing = [name for name, ok in parts.items() if not ok]
    if not missing:
        if math.isfinite(quality.shape) and quality.shape > SHAPES_FAR:
            return LEARNED, ("learned: colours, grain and larger patterns came through, but not the target's shapes: the "
                             f"regions its outlines enclose differ in size or roundness (shape {quality.shape:.1f}; look at the preview)")
        return LEARNED, ("learned: colours, grain and larger patterns came through (whether whole objects formed, the score "
                         "cannot tell for sure: look at the preview)")
    if not learned:
        noise = not math.isfinite(quality.combined) or quality.combined > NOISE
        return NOT_LEARNED, "not learned yet: this is noise" if noise else "not learned yet: no colours, grain or larger patterns of the target"
    return PARTLY, f"{_listed(learned)} learned, no {_listed(missing, 'or')} yet"


def _listed(names: list[str], last: str = "and") -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def advice(word: str, iterations: int, seconds: float, planned: int) -> tuple[str, int, int]:
    """How much more training should help, from the run's own pace, when the model is not learned yet: text, goal, minutes.

    The goal is the run's planned iterations or the default recipe's 500, whichever is more; past it, twice as many.
    """
    if word not in (PARTLY, NOT_LEARNED) or iterations <= 0:
        return "", 0, 0
    goal = max(planned, RECIPE_ITERS)
    pace = seconds / iterations
    if iterations >= goal:
        goal = 2 * iterations
        minutes = max(1, round(pace * (goal - iterations) / 60))
        return ((f"it trained {iterations:,} iterations already: more (about {minutes} minutes for {goal:,} in all) or other "
                "settings may help"), goal, minutes)
    minutes = max(1, round(pace * (goal - iterations) / 60))
    return ((f"train longer: {goal - iterations:,} more iterations, to {goal:,} (about {minutes} more minute{'s' * (minutes != 1)} "
            f"at this run's pace of {pace:.1f} s an iteration), should help"), goal, minutes)


def assess(folder: str | Path, rollout: Rollout | None) -> Verdict:
    """The verdict on the model in `folder`, grown as `rollout` (`grow_for_verdict`), with advice from its training.json."""
    folder = Path(folder)
    quality = grown_score(folder, rollout)
    word, sentence = judge(quality)
    info = read_training_log(folder) or {}
    planned = (info.get("config") or {}).get("iters", RECIPE_ITERS)
    iterations, seconds = info.get("iterations", 0), info.get("seconds", 0.0)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (planned, iterations, seconds))
    hint, goal, minutes = advice(word, int(iterations), float(seconds), int(planned)) if numbers else ("", 0, 0)
    return Verdict(word, sentence, quality if isinstance(quality, Score) else None, hint, goal, minutes)
