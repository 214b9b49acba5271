"""Atomic file outputs (temporary name in the same folder, then rename) and the ids sidecar.

Every output kagglekit writes goes through here: files via `atomic_path`, whole folders via
`atomic_dir` (built in `.<name>.partial/`, renamed into place when complete).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kagglekit.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield an empty `.<name>.partial/` sibling folder; on success it becomes `path` (which must be
    absent or empty, unless `replace`: then the old folder is swapped out and deleted). A refusal of
    bad input (UserError) removes it; after a crash or a kill it stays for inspection and the next
    run starts it afresh."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)  # leftovers of an interrupted run
    partial.mkdir(parents=True)
    try:
        yield partial
    except UserError:  # the message names the bad input: nothing to inspect here, nothing to resume
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        shutil.rmtree(old)  # left by a run interrupted between the swap and the clean-up
    if path.exists() and replace:
        os.replace(path, old)
    elif path.exists():
        path.rmdir()  # an empty folder; a non-empty one raises instead of being overwritten
    os.replace(partial, path)
    if old.exists():
        shutil.rmtree(old)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def not_npy(path: str | os.PathLike) -> str | None:
    """What `path` holds when it is not a .npy file ("an empty file", "a pickle", ...), else None:
    named in refusals instead of numpy's error, which suggests unpickling the file."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        return None
    return "an empty file" if not head else "a pickle" if head[:1] == b"\x80" else f"a file starting {head!r}"


def write_ids(path: str | os.PathLike, ids: list[str]) -> None:
    """The ids sidecar of a prediction file: one id per line, in the array's row order."""
    atomic_write_text(path, "\n".join(ids) + "\n")


def read_ids(path: str | os.PathLike) -> list[str]:
    """Read an ids sidecar (`ids.txt`: one id per line); duplicates and an empty file are errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: ids file not found (expected one id per line, as `predict` writes it)")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise UserError(f"{path}: no ids (expected one id per line)")
    if "," in ids[0]:
        raise UserError(f"{path}: expected one id per line, found a CSV row {ids[0]!r}")
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise UserError(f"{path}: duplicate ids, e.g. {repeated[:3]}")
    return ids
