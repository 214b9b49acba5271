"""Checkpoints: atomic saves of plain data; loads that never run code (`weights_only=True`).

A checkpoint holds tensors and plain Python values only (dicts, lists, tuples, str, numbers,
None), so `torch.load(weights_only=True)` reads it. A file that pickles anything else is refused
with one line: a checkpoint written before safe loading (numpy RNG state and scalars) names the
command that converts it; any other global (e.g. `posix.system`) is never called.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from kagglekit.errors import UserError
from kagglekit.io import atomic_torch_save


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, unsafe, or not the kind expected."""


class OldCheckpointError(CheckpointError):
    """A kagglekit checkpoint from before safe loading (numpy objects inside): convert it once."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that pickles code or objects that are not weights or plain data."""


CONVERT_COMMAND = "kagglekit convert-checkpoint"
# what kagglekit checkpoints written before safe loading pickled besides tensors: numpy's RNG
# state (an array) and numpy scalars in metrics; arrays and scalars only, never callables
_NUMPY_GLOBALS = {
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
}
_DTYPE_CLASS = re.compile(r"numpy\.dtypes\.(?!Object)\w+DType")  # object arrays could hold anything


def plain(value):
    """`value` with numpy arrays as tensors and numpy scalars as Python numbers (safe to load)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"an object array {value.shape} is not plain data")
        if value.dtype.kind == "u" and value.dtype.itemsize > 1:
            value = value.astype(np.int64)  # unsigned ints beyond uint8 have little torch support
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_checkpoint(state: dict, path: Path) -> None:
    atomic_torch_save(plain(state), path)


def _globals_in(path: Path, error: Exception) -> list[str]:
    """The non-default globals a refused file pickles (from the zip's pickle, else the error)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError, pickle.UnpicklingError):  # not torch.save's zip format
        return re.findall(r"GLOBAL ([\w.]+)", str(error))


def _is_numpy(name: str) -> bool:
    return name in _NUMPY_GLOBALS or bool(_DTYPE_CLASS.fullmatch(name))


def _refusal(path: Path, error: Exception) -> CheckpointError:
    found = _globals_in(path, error)
    if found and all(map(_is_numpy, found)):
        return OldCheckpointError(
            f"{path}: a kagglekit checkpoint from before safe loading (it pickles numpy objects: RNG state or "
            f"scalars); convert it once with `{CONVERT_COMMAND} {path}`"
        )
    what = ", ".join(sorted(n for n in found if not _is_numpy(n)))
    what = f"it pickles {what}, which is" if what else "it holds pickle instructions that are"
    return UnsafeCheckpointError(
        f"{path}: refused: {what} not weights or plain data, and a safe load never runs it; "
        "not a kagglekit checkpoint, or altered: take the file from its source or retrain"
    )


def _brief(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _load(path: Path, mmap: bool = False, remedy: str = "delete it to restart this fold", what: str = "checkpoint") -> object:
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: expected a {what}, found an empty file (0 bytes); {remedy}")
    try:
        with warnings.catch_warnings():  # torch warns about a plain pickle's protocol before refusing it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise CheckpointError(f"{path}: cannot read {what} ({_brief(exc)}); {remedy}") from None
        raise _refusal(path, exc) from None
    except Exception as exc:  # truncated or not a torch file: torch raises several types
        raise CheckpointError(f"{path}: cannot read {what} ({type(exc).__name__}: {_brief(exc)}); {remedy}") from None


def load_weights_file(path: Path) -> object:
    """Any torch file (e.g. a backbone's state dict) loaded with `weights_only=True`; unreadable or
    pickled code is one CheckpointError naming the file."""
    return _load(Path(path), remedy="take the file from its source", what="weights file")


def load_checkpoint(path: Path, required: tuple[str, ...] = (), mmap: bool = False) -> dict:
    """A checkpoint dict loaded with `weights_only=True` (with `mmap`, tensors stay on disk until used)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_symlink():  # e.g. a staged weights file linked into a run folder: name the real file
        path = path.resolve()
    state = _load(path, mmap=mmap)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a kagglekit checkpoint (a dict), found {type(state).__name__}")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}; not a kagglekit checkpoint of this kind")
    return state


def convert_checkpoint(path: Path) -> bool:
    """Rewrite a checkpoint from before safe loading as plain data, in place; False when it loads
    safely already. The conversion's load stays restricted: numpy arrays and scalars (no object
    arrays) are the only things let through besides tensors and plain data."""
    path = Path(path)
    try:
        load_checkpoint(path)
    except OldCheckpointError:
        _convert(path)
        return True
    return False


def _convert(path: Path) -> None:
    reconstruct, scalar = np._core.multiarray._reconstruct, np._core.multiarray.scalar
    allowed = [np.ndarray, np.dtype, reconstruct, scalar]
    allowed += [(reconstruct, "numpy.core.multiarray._reconstruct"), (scalar, "numpy.core.multiarray.scalar")]  # numpy 1.x names
    allowed += [type(np.dtype(code)) for code in np.typecodes["All"] if code != "O"]
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: cannot convert: it pickles numpy objects beyond arrays and scalars of numbers ({_brief(exc)[:120]})"
        ) from None
    save_checkpoint(state, path)
    load_checkpoint(path)  # it now loads the safe way
