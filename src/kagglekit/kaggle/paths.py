"""Where a kernel's inputs are mounted, under both layouts of `/kaggle/input` (docs/reference/kaggle-facts.md).

Older kernels see `input/<slug>/` for competitions, datasets and kernel outputs and
`input/<model>/<framework>/<variation>/<N>/` for models; newer ones see
`input/competitions/<comp>/`, `input/datasets/<owner>/<slug>/`,
`input/models/<owner>/<model>/<framework>/<variation>/<N>/` (kernel outputs presumably under
`input/notebooks/<owner>/<slug>/`). A lookup tries those places, then any folder below `input/`
whose path ends like the handle and holds the marker file; when nothing matches, the error lists
what is mounted. The root (`/kaggle`) is overridable with KAGGLEKIT_KAGGLE_ROOT.
"""

from __future__ import annotations

import os
from pathlib import Path

from kagglekit.kaggle import KaggleError

ROOT_ENV = "KAGGLEKIT_KAGGLE_ROOT"
SEARCH_DEPTH = 6  # input/models/<owner>/<model>/<framework>/<variation>/<N> is the deepest layout
LISTED = 40  # entries shown when an input is missing


class MissingInputError(KaggleError):
    pass


def kaggle_root(root: str | os.PathLike | None = None) -> Path:
    """`root`, else $KAGGLEKIT_KAGGLE_ROOT, else /kaggle."""
    return Path(root if root is not None else os.environ.get(ROOT_ENV, "/kaggle"))


def _parts(handle: str, sizes: tuple[int, ...], kind: str, form: str) -> list[str]:
    parts = handle.strip("/").split("/")
    if len(parts) not in sizes or not all(parts):
        raise KaggleError(f"{kind} handle {handle!r}: expected {form}")
    return parts


def _places(kind: str, handle: str) -> tuple[list[Path], tuple[str, ...]]:
    """(candidate folders relative to input/, the path tail a found folder must end with)."""
    if kind == "competition":
        (comp,) = _parts(handle, (1,), kind, "the competition slug, e.g. waveform-inversion")
        return [Path("competitions", comp), Path(comp)], (comp,)
    if kind == "dataset":
        owner, slug = _parts(handle, (2, 3), kind, "owner/slug[/version]")[:2]
        return [Path("datasets", owner, slug), Path(slug)], (slug,)
    if kind == "kernel":
        owner, slug = _parts(handle, (2, 3), kind, "owner/slug[/version]")[:2]
        return [Path("notebooks", owner, slug), Path("kernels", owner, slug), Path(slug)], (slug,)
    if kind == "model":
        owner, model, framework, variation, version = _parts(handle, (5,), kind, "owner/model/framework/variation/version")
        places = []
        for fw in dict.fromkeys((framework, framework.lower())):  # mounted as `pytorch` for `pyTorch`
            places += [Path("models", owner, model, fw, variation, version), Path(model, fw, variation, version)]
        return places, (variation, version)
    raise KaggleError(f"unknown input kind {kind!r}; valid: competition, dataset, kernel, model")


def _walk_dirs(top: Path, depth: int):
    """Folders below `top` (not following links), at most `depth` levels down, in sorted order."""
    if depth <= 0:
        return
    try:
        children = sorted((e for e in os.scandir(top) if e.is_dir()), key=lambda e: e.name)
    except OSError:
        return
    for entry in children:
        path = Path(entry.path)
        yield path
        if not entry.is_symlink():
            yield from _walk_dirs(path, depth - 1)


def describe_inputs(inputs: Path) -> str:
    """What is mounted under `inputs`: folders up to three levels down."""
    if not inputs.is_dir():
        return f"{inputs} does not exist"
    found = [f"{p.relative_to(inputs)}/" for p in _walk_dirs(inputs, 3)]
    if not found:
        return f"{inputs} is empty"
    more = f" ... ({len(found) - LISTED} more)" if len(found) > LISTED else ""
    return f"{inputs} holds: " + ", ".join(found[:LISTED]) + more


def find_input(kind: str, handle: str, marker: str, root: str | os.PathLike | None = None) -> Path:
    """The mounted folder of a competition, dataset, kernel output or model (`kind`) that holds
    `marker` (a file or folder name, or a relative path)."""
    inputs = kaggle_root(root) / "input"
    places, tail = _places(kind, handle)
    for rel in places:
        if (inputs / rel / marker).exists():
            return inputs / rel
    matches = [
        p for p in _walk_dirs(inputs, SEARCH_DEPTH) if p.parts[-len(tail) :] == tail and (p / marker).exists()
    ]  # a layout not foreseen here
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise MissingInputError(f"{kind} {handle}: several folders under {inputs} hold {marker}: {[str(m) for m in matches]}")
    tried = ", ".join(f"{rel}/{marker}" for rel in places)
    raise MissingInputError(f"{kind} {handle} is not attached (no {tried} under {inputs}); {describe_inputs(inputs)}")


def find_weights(handle: str, marker: str = "manifest.json", root: str | os.PathLike | None = None) -> Path:
    """Staged weights from a dataset (`owner/slug`) or a model (`owner/model/framework/variation/N`)."""
    return find_input("model" if handle.count("/") == 4 else "dataset", handle, marker, root)
