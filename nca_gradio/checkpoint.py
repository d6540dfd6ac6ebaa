"""A training run's checkpoint: everything a resume needs, in one file, replaced whole.

training_state.safetensors holds the last good weights, Adam's moments, the pool, the
generators' states and the run's record (training.json's content, as its metadata). It is
written first and in one rename, so a process killed at any moment leaves either the
previous checkpoint or this one, never parts of two iterations. The model files, training.json
and the target are then written beside it for people and for the card; a resume reads the
checkpoint alone. Nothing here unpickles: a folder may come from anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import atomic
from .errors import UserError
from .model import NCA
from .model_folder import TRAINING_LOG, TRAINING_STATE, ModelLoadError, load_folder, write_json, write_model, write_target
from .precision import dtype_name
from .train_config import ConfigError, TrainConfig

RESUME_ADVICE = "this run cannot be resumed: start the training again, or restore the folder from a backup"
STATE_KEYS = ("pool", "generator", "mask_generator", "global_generator")
ADAM_KEYS = {"step", "exp_avg", "exp_avg_sq"}
RECORD_KEY = "training"  # the checkpoint's metadata entry that holds the run's record (JSON)
MODEL_PREFIX, ADAM_PREFIX = "model.", "adam."
OVERRIDABLE = ("iters", "time_budget", "lr", "device")  # what a resume may change; the rest is the run's own


class CheckpointError(UserError, ValueError):
    """A training run that cannot be resumed from its folder, with a one-line reason."""


def damaged(path: Path, why: object) -> CheckpointError:
    return CheckpointError(f"{path} is damaged ({why}); {RESUME_ADVICE}")


def has_checkpoint(folder: Path) -> bool:
    return (Path(folder) / TRAINING_STATE).is_file()


@dataclass
class Checkpoint:
    """The run's record (`info`: training.json's content) and its tensors (weights, Adam, pool, generators)."""

    info: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    path: Path = Path(TRAINING_STATE)  # where it was read from, for messages

    # ------------------------------------------------------------------ from and into a Trainer

    @classmethod
    def capture(cls, trainer: Any) -> Checkpoint:
        """The trainer's last good state (`Trainer.good_state`), with the pool and generators as they are now."""
        global_rng = torch.get_rng_state()
        good = trainer.good_state()
        tensors = {MODEL_PREFIX + name: value.detach().float().cpu().contiguous() for name, value in good["model"].items()}
        tensors.update(pool=trainer.pool.detach().float().cpu().contiguous(), generator=trainer.generator.get_state(),
                       mask_generator=trainer.mask_generator.get_state().cpu(), global_generator=global_rng)
        for index, state in good["optimizer"]["state"].items():
            for key, value in state.items():
                tensors[f"{ADAM_PREFIX}{index}.{key}"] = value.detach().cpu().contiguous().reshape(value.shape)
        info = {
            "config": trainer.config.to_dict(),
            "loss": trainer.loss_name,
            "iterations": good["iteration"],
            "seconds": round(trainer.seconds, 2),
            "device": str(trainer.device),
            "precision": dtype_name(trainer.compute_dtype),
            "parameters": trainer.model.num_parameters,
            "rollbacks": trainer.rollbacks,
            "planned_iterations": trainer.planned_iters,
            "lr_milestones": sorted(trainer.schedule.milestones.elements()),  # fitted to the plan when the run has a time budget
            "history": trainer.history,
        }
        return cls(info, tensors)

    def config(self, overrides: dict | None = None) -> TrainConfig:
        """The run's settings, with a resume's `overrides` (only `OVERRIDABLE` ones) on top.

        `iters` is the run's total; a `time_budget` counts from the resume (more seconds on top of those spent).
        """
        overrides = dict(overrides or {})
        refused = sorted(set(overrides) - set(OVERRIDABLE))
        if refused:
            raise ConfigError(f"a resumed run keeps its {', '.join(refused)}; only {', '.join(OVERRIDABLE)} can change on resume")
        if overrides.get("time_budget"):
            overrides["time_budget"] = round(float(self.info.get("seconds", 0.0)) + overrides["time_budget"], 2)
        try:
            return TrainConfig.from_dict({**self.info["config"], **(overrides or {})})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError) and overrides and any(name in str(exc) for name in overrides):
                raise
            raise damaged(self.path, f"its settings: {exc}") from None

    def model_state(self) -> dict[str, torch.Tensor]:
        return {name[len(MODEL_PREFIX):]: value for name, value in self.tensors.items() if name.startswith(MODEL_PREFIX)}

    def restore(self, trainer: Any) -> None:
        """Put the saved state into a freshly built trainer of the same settings; the NaN count starts again."""
        try:
            trainer.model.load_state_dict(self.model_state())
            if self.tensors["pool"].shape != trainer.pool.shape:
                raise ConfigError("the checkpoint's pool does not match size/pool_size; resume with the same settings")
            trainer.pool.copy_(self.tensors["pool"].to(trainer.device))
            trainer.generator.set_state(self.tensors["generator"])
            if trainer.device.type == "cpu":
                trainer.mask_generator.set_state(self.tensors["mask_generator"])
            torch.set_rng_state(self.tensors["global_generator"])
            trainer.optimizer.load_state_dict(self._optimizer_state(trainer))
        except ConfigError:
            raise
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise damaged(self.path, str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__) from None
        iteration = self.info["iterations"]
        saved = self.info["config"]
        if saved.get("iters") == trainer.config.iters and saved.get("time_budget") == trainer.config.time_budget:
            trainer.schedule.resume(iteration, _count_list(self.info.get("lr_milestones")), _count(self.info.get("planned_iterations")))
        else:  # a new length or budget: the plan is made again from here
            trainer.schedule.resume(iteration)
        trainer.iteration = iteration
        trainer.seconds = float(self.info.get("seconds", 0.0))
        trainer.history = list(self.info.get("history", []))
        trainer.rollbacks = 0  # a resume is a fresh chance: the old count would abort it at once
        trainer.remember_good()

    def _optimizer_state(self, trainer: Any) -> dict:
        opt_state = trainer.optimizer.state_dict()
        for index, param in enumerate(trainer.model.parameters()):
            keys = [k for k in self.tensors if k.startswith(f"{ADAM_PREFIX}{index}.")]
            if keys:
                state = {k.split(".", 2)[2]: self.tensors[k].to(trainer.device) for k in keys}
                if set(state) != ADAM_KEYS or any(state[k].shape != param.shape for k in ("exp_avg", "exp_avg_sq")):
                    raise ValueError(f"the optimizer state of parameter {index} is incomplete or of the wrong shape")
                state["step"] = state["step"].cpu()
                opt_state["state"][index] = state
        return opt_state

    # ------------------------------------------------------------------ files

    def write(self, folder: Path, target: torch.Tensor | None = None) -> None:
        """The checkpoint in one rename, then the model, training.json and the target beside it.

        A failed write raises `SaveError` and leaves the files already there as they were. Nothing here
        draws from the global random generator, so a run that saves trains the same numbers as one that does not.
        """
        metadata = {RECORD_KEY: json.dumps(self.info)}
        with atomic.replacing(folder / TRAINING_STATE, write_errors=(SafetensorError,)) as temp:
            save_file(self.tensors, str(temp), metadata=metadata)
        with torch.random.fork_rng(devices=[]):  # building a model draws its initial weights
            model = NCA(self.config().architecture)
        model.load_state_dict(self.model_state())
        write_model(model, folder)
        write_json(folder, TRAINING_LOG, self.info)
        if target is not None:
            write_target(folder, target)

    @classmethod
    def read(cls, folder: str | Path) -> Checkpoint:
        """The checkpoint in `folder`, checked for what a resume reads from it.

        One written before the record moved into it (no metadata) takes the record from training.json
        and the weights from the model files, as it was saved then.
        """
        folder = Path(folder)
        path = folder / TRAINING_STATE
        if not path.exists():
            raise CheckpointError(f"{folder} holds no checkpoint to resume ({TRAINING_STATE} is missing)")
        try:
            with safe_open(str(path), framework="pt") as file:
                metadata = file.metadata() or {}
                tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 - safe_open has no iteration
        except (SafetensorError, OSError, ValueError) as exc:
            raise damaged(path, str(exc).splitlines()[0] if str(exc) else "unreadable") from None
        missing = [key for key in STATE_KEYS if key not in tensors]
        if missing:
            raise damaged(path, f"{', '.join(missing)} missing")
        if RECORD_KEY in metadata:
            info = _checked_record(path, metadata[RECORD_KEY])
        else:
            log = folder / TRAINING_LOG
            try:
                info = _checked_record(log, log.read_text())
            except OSError as exc:
                raise damaged(log, exc.strerror or exc.__class__.__name__) from None
        if not any(key.startswith(MODEL_PREFIX) for key in tensors):
            try:
                tensors.update({MODEL_PREFIX + k: v for k, v in load_folder(folder).state_dict().items()})
            except ModelLoadError as exc:
                raise CheckpointError(f"the model in {folder} does not load ({exc}); {RESUME_ADVICE}") from None
        return cls(info, tensors, path)


def _checked_record(path: Path, text: str) -> dict:
    try:
        info = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise damaged(path, f"not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise damaged(path, "no training settings in it")
    iterations = info.get("iterations")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise damaged(path, f"iterations is {iterations!r}, not a count")
    for key, kind in (("seconds", (int, float)), ("history", list), ("rollbacks", int)):
        if key in info and (isinstance(info[key], bool) or not isinstance(info[key], kind)):
            raise damaged(path, f"{key} has the wrong type")
    return info


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _count_list(value: object) -> list[int] | None:
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    return value if ok else None
