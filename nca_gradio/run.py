"""One training run in a model folder: opened or resumed, trained in slices, checkpointed, stopped, finished.

`nca train`, the studio (whole or in ZeroGPU chunks) and `nca train-many` all train through
`TrainingRun`, so they resume, checkpoint and stop the same way: a checkpoint at the start and
at least every `CHECKPOINT_SECONDS` (a `kill -9` loses at most that much), the last good model
saved whatever ends the run, and SIGTERM handled by one handler (`sigterm_stops_runs`) that
stops every run in the process as the Stop button does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from .atomic import free_bytes, prepare_folder
from .card import write_card
from .errors import UserError
from .loading import load_start
from .model import NCA
from .train import Status, TrainConfig, Trainer

CHECKPOINT_SECONDS = 60.0  # at most this much training is lost to a kill -9; a checkpoint costs well under 1% of it
CHECKPOINT_ENV = "NCA_CHECKPOINT_SECONDS"  # another cadence, for tests and for those who want a different trade
SIGTERM_GRACE_SECONDS = 20.0  # a Space waits about 30 s after SIGTERM before it kills


def checkpoint_cadence() -> float:
    """The checkpoint cadence: `NCA_CHECKPOINT_SECONDS` if set to a positive number, else `CHECKPOINT_SECONDS`."""
    try:
        seconds = float(os.environ.get(CHECKPOINT_ENV, CHECKPOINT_SECONDS))
    except ValueError:
        raise UserError(f"{CHECKPOINT_ENV} must be a number of seconds, got {os.environ[CHECKPOINT_ENV]!r}") from None
    if not 0 < seconds < float("inf"):
        raise UserError(f"{CHECKPOINT_ENV} must be a positive number of seconds, got {seconds:g}")
    return seconds


class TrainingFailed(UserError):
    """A run that could not go on (NaN or inf again and again); its last good model is saved."""


class StopRequest:
    """Asks a run to stop at its next iteration: in memory, and through a file where the run may be in another process."""

    def __init__(self, file: Path | None = None) -> None:
        self.file = file
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()
        if self.file is not None:
            with contextlib.suppress(OSError):  # the session's folder is gone: nothing left to save
                self.file.touch()

    def __call__(self) -> bool:
        return self._event.is_set() or (self.file is not None and self.file.exists())


class TrainingRun:
    """A Trainer bound to its folder and target: what to save, when, and how a stop or an end is handled."""

    def __init__(self, folder: Path, target: torch.Tensor, trainer: Trainer, stop: StopRequest | None = None,
                 checkpoint_seconds: float | None = None) -> None:
        self.folder = folder
        self.target = target
        self.trainer = trainer
        self.stop = stop or StopRequest()
        self.checkpoint_seconds = checkpoint_seconds if checkpoint_seconds is not None else checkpoint_cadence()
        self._saved_at = time.monotonic()

    @classmethod
    def open(
        cls, folder: str | Path, target: torch.Tensor, config: TrainConfig, resume: bool = False, overrides: dict | None = None,
        log: Callable[[str], None] = lambda message: None, stop: StopRequest | None = None,
        checkpoint_seconds: float | None = None, start: NCA | str | Path | None = None,
    ) -> TrainingRun:
        """Start a run of `config`, or with `resume` continue the folder's checkpoint with `overrides` on its settings
        (iters, time_budget, lr, device: `checkpoint.OVERRIDABLE`; a resume's NaN count starts again).
        A fresh run with `config.start_from` starts from that model: `start`, or loaded from `start` (a folder behind a
        studio label) or else from the name; a resume continues the checkpoint's weights, and needs the start model no more.

        The folder is checked for room before any training, and a fresh run saves at once, so that the
        folder holds a model, and a checkpoint to resume, from the first second.
        """
        folder = Path(folder)
        if not resume and config.start_from and not isinstance(start, NCA):
            start = load_start(start or config.start_from)
        trainer = Trainer.resume(folder, target, overrides, log=log) if resume else Trainer(target, config, log=log, start=start)
        prepare_folder(folder)
        needed, free = trainer.checkpoint_bytes, free_bytes(folder)
        if free < needed:
            raise UserError(f"{folder} has {free / 1e6:,.1f} MB free, but this run's checkpoint needs about {needed / 1e6:,.1f} MB: "
                            f"free some space or choose another folder")
        run = cls(folder, target, trainer, stop, checkpoint_seconds)
        if not resume:
            run.save()
        return run

    def save(self) -> None:
        """The last good model and the checkpoint, each file replaced whole (`Trainer.save`)."""
        self.trainer.save(self.folder, self.target)
        self._saved_at = time.monotonic()

    def updates(
        self, callback: Callable[[Status], None] | None = None, seconds: float | None = None, every: float | None = None,
        previews: bool = False, card: bool = False,
    ) -> Iterator[Status]:
        """Train to the end, a stop, or `seconds`; yield a status every `every` seconds and at the end.

        The model is saved before the last status is yielded, so whoever reads it finds the model on
        disk, and also if the reader goes away early. `card`: a run that ended (finished or stopped)
        gets its card and preview too, and its last status the verdict (`verdict.Verdict`). `callback` hears of every iteration.
        """
        trainer, started, ended = self.trainer, time.monotonic(), False
        try:
            with _registered(self.stop):
                while not ended:
                    left = None if seconds is None else seconds - (time.monotonic() - started)
                    until_save = self.checkpoint_seconds - (time.monotonic() - self._saved_at)
                    slice_seconds = max(1e-3, min(s for s in (every, left, until_save, 3600.0) if s is not None))
                    status = trainer.train(callback, self.stop, preview_every=10**9, max_seconds=slice_seconds)
                    ended = status.finished or status.stopped or (left is not None and time.monotonic() - started >= seconds)
                    if ended or time.monotonic() - self._saved_at >= self.checkpoint_seconds:
                        self.save()
                    if ended and card and (status.finished or status.stopped) and status.iteration:  # stopped before
                        status.verdict = write_card(self.folder)  # its first iteration: nothing learned to judge
                    if previews:
                        status.preview = trainer.preview()
                    if ended or every is not None:
                        yield status
        except FloatingPointError as exc:
            ended = True
            self.save()
            raise TrainingFailed(f"{exc}; the last good model is saved in {self.folder}") from None
        finally:
            if not ended:  # the reader went away, or Ctrl-C: keep what was learnt
                self.save()

    def run(self, callback: Callable[[Status], None] | None = None, card: bool = False) -> Status:
        """Train to the end or a stop; the last status."""
        status = None
        for status in self.updates(callback, card=card):
            pass
        return status


# ------------------------------------------------------------------ SIGTERM: one handler for every run in the process


_lock = threading.Lock()
_running: dict[int, tuple[StopRequest, int]] = {}  # id(stop) -> (stop, thread ident)


@contextlib.contextmanager
def _registered(stop: StopRequest) -> Iterator[None]:
    with _lock:
        _running[id(stop)] = (stop, threading.get_ident())
    try:
        yield
    finally:
        with _lock:
            _running.pop(id(stop), None)


@contextlib.contextmanager
def stops_on_sigterm(stop: StopRequest) -> Iterator[StopRequest]:
    """Register a stop request that SIGTERM sets while the block runs (a studio training whose chunks run elsewhere)."""
    with _registered(stop):
        yield stop


def _handle_sigterm(previous: object, grace_seconds: float) -> Callable:
    def handle(signum: int, frame: object) -> None:
        with _lock:
            runs = list(_running.values())
        for stop, _ in runs:
            stop.set()
        if any(thread == threading.main_thread().ident for _, thread in runs):
            return  # the run is on this very thread (`nca train`): it stops, saves and exits when the handler returns
        deadline = time.monotonic() + grace_seconds
        while _running and time.monotonic() < deadline:
            time.sleep(0.05)
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # the default action ends the process; an ignored signal stays ignored

    return handle


def sigterm_stops_runs(grace_seconds: float = SIGTERM_GRACE_SECONDS) -> Callable[[], None]:
    """From now on SIGTERM (a Space restarting, a scheduler) stops every run in this process, as Stop does, so each saves.

    Runs on other threads (the studio's) are waited for up to `grace_seconds`, then the process ends as SIGTERM would;
    a run on the main thread (`nca train`) stops and its command exits by itself. Call from the main thread;
    returns a function that puts the previous handler back. Elsewhere it does nothing (signals reach only the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _handle_sigterm(previous, grace_seconds))
    return lambda: signal.signal(signal.SIGTERM, previous)
