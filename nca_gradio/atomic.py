"""Saving files so that a crash, `kill -9` or a full disk never leaves a half-written one.

Every file is written to a temporary name in its own folder, checked, flushed to disk and
then renamed over the old one (`os.replace` is atomic): a reader sees the old file or the
new one, never part of one. A failed write raises `SaveError` and leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import UserError

TEMP_PREFIX = ".nca-tmp-"  # what is left behind only by a process killed mid-write; ignored by readers
LEFTOVER_SECONDS = 600  # a temporary file this old belongs to no write still running: `prepare_folder` removes it


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would have given the file: mkstemp makes it private (0600)


class SaveError(UserError):
    """A file that could not be written, with a one-line reason; the previous file is untouched."""


def _reason(exc: BaseException) -> str:
    """The last line of what went wrong ("Permission denied", "File too large (os error 27)")."""
    if getattr(exc, "strerror", None):
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[-1] if text else exc.__class__.__name__


@contextlib.contextmanager
def replacing(
    path: str | Path, check: Callable[[Path], str | None] | None = None, write_errors: tuple[type[Exception], ...] = ()
) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix, so writers pick the same format); on success,
    `check` it (it returns what is wrong, or None), flush it and rename it onto `path`. On any failure the
    temporary file is removed; an `OSError`, or one of `write_errors` (how a writer reports I/O errors), becomes `SaveError`."""
    path = Path(path)
    if path.is_dir():
        raise SaveError(f"cannot write {path}: it is a folder; choose a file name")
    try:
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}-", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise SaveError(f"cannot write {path}: {_reason(exc)}") from None
    temp = Path(name)
    try:
        yield temp
        problem = check(temp) if check is not None else None
        if problem:
            raise SaveError(f"could not write {path}: {problem}; the previous {path.name}, if any, is unchanged")
        _flush(temp)
        os.replace(temp, path)
    except (OSError, *write_errors) as exc:
        raise SaveError(f"could not write {path}: {_reason(exc)}; the previous {path.name}, if any, is unchanged") from None
    finally:
        temp.unlink(missing_ok=True)
    _flush_folder(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with replacing(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def replace_files(source: Path, folder: Path, names: list[str] | None = None) -> None:
    """Move files written in `source` (a scratch folder inside `folder`) over their namesakes in `folder`, one rename each."""
    for file in sorted(source.iterdir()) if names is None else [source / n for n in names]:
        _flush(file)
        try:
            os.replace(file, folder / file.name)
        except OSError as exc:
            raise SaveError(f"could not write {folder / file.name}: {_reason(exc)}") from None
    _flush_folder(folder)


@contextlib.contextmanager
def scratch_folder(folder: Path, write_errors: tuple[type[Exception], ...] = ()) -> Iterator[Path]:
    """A temporary folder inside `folder` (same file system: its files can be renamed into place), removed afterwards."""
    try:
        scratch = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    except OSError as exc:
        raise SaveError(f"cannot write in {folder}: {_reason(exc)}") from None
    try:
        yield scratch
    except (OSError, *write_errors) as exc:
        raise SaveError(f"could not write in {folder}: {_reason(exc)}; the files already there are unchanged") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_folder(folder: str | Path, where: str = "another output folder") -> Path:
    """Refuse, before any work or download, an output folder that is empty text (Path("") is the current
    folder, never what was meant) or that is, or lies under, a file; `where` says what to choose instead."""
    if not str(folder).strip():
        raise SaveError("the output path is empty: give a folder name")
    folder = Path(folder)
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                lies_under = "" if place == folder else f", so {folder} cannot be made"
                raise SaveError(f"{place} is a file, not a folder{lies_under}: choose {where}")
            break
    return folder


def prepare_folder(folder: str | Path) -> Path:
    """The one check of an output folder (`check_folder`): make it and prove a file can be written in it,
    so that long work is not lost at the end.

    Temporary files that a killed process left there (a checkpoint's can be large) are removed.
    """
    folder = check_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=TEMP_PREFIX, dir=folder) as probe:
            probe.write(b"probe")
            probe.flush()
    except OSError as exc:
        raise SaveError(f"cannot write in {folder} ({_reason(exc)}): choose another output folder") from None
    _remove_leftovers(folder)
    return folder


@contextlib.contextmanager
def removed_if_refused(folder: str | Path) -> Iterator[None]:
    """Checks that run after `prepare_folder` made `folder`: a refusal among them leaves no empty folder behind
    (one that was there before, or that holds anything, stays)."""
    folder = Path(folder)
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only an empty folder goes
        raise


def prepare_file(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """The one check of an output file, before any work: a name with one of `suffixes` (the writers pick the
    format by it), not a folder nor a device (a rename would replace /dev/full itself), in a folder that
    `prepare_folder` makes and proves writable."""
    example = f"a file name such as out{suffixes[0]}"
    if not str(path).strip():
        raise SaveError(f"the output path is empty: give {example}")
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise SaveError(f"{path}: the output must end in {', '.join(suffixes)}")
    if out.is_dir():
        raise SaveError(f"{path} is a folder: give a file name, such as {out / ('out' + out.suffix.lower())}")
    if out.exists() and not out.is_file():
        raise SaveError(f"{path} is not a regular file (a device, pipe or socket): give {example}")
    prepare_folder(out.parent)
    return out


def _remove_leftovers(folder: Path) -> None:
    now = time.time()
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if now - path.lstat().st_mtime <= LEFTOVER_SECONDS:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass  # another process's, or already gone


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _flush(path: Path) -> None:
    """Give the file the mode a plain write would have (some writers make it private), and put it on disk."""
    os.chmod(path, FILE_MODE)
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _flush_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
