"""What a task declares about a Kaggle kernel it ships (`TaskSpec.kernels`): a leaf module, so the
task contract can name it without importing the rendering and staging code of `kaggle/`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

COMMON_OPTIONS = ("slug", "title", "code", "machine_shape")

# where an option's value is attached; weights: a dataset, or a model owner/model/framework/variation/N
Source = Literal["dataset", "competition", "kernel", "weights"]


@dataclass(frozen=True)
class KernelOption:
    """One render option of a kernel kind (`render-kernel --<name>`): baked into the script."""

    default: Any  # None: unset; a string may hold "{owner}" (filled with the kernel's owner)
    help: str  # also the comment beside the script's constant
    type: Callable[[str], Any] = str  # how the command line parses it
    source: Source | None = None  # the value is a Kaggle input the kernel attaches (kernel-metadata's *_sources)


@dataclass(frozen=True)
class KernelKind:
    """A kernel a task ships: `render-kernel <name>` writes kernels/<slugify(title)>/."""

    name: str  # e.g. "fwi-submission"
    title: str  # default kernel title; its slug is the default folder and kernel id
    summary: str  # what the kernel does (the script's first line)
    runtime: Callable[..., Any]  # called on Kaggle as runtime(root=ROOT, **arguments); importable by its module
    options: dict[str, KernelOption] = field(default_factory=dict)
    code_file: str = "kernel.py"
    # options -> the runtime's keyword arguments (e.g. a config file -> its name and text); default: the options as they are
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        reserved = sorted(set(self.options) & {*COMMON_OPTIONS, "kind", "out", "owner", "root"})
        if reserved:
            raise ValueError(f"kernel kind {self.name}: options {reserved} are reserved by render-kernel")

    @property
    def slug(self) -> str:
        return slugify(self.title)


def slugify(title: str) -> str:
    """The slug Kaggle derives from an (ASCII) title: lowercase words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"['\"]", "", title.lower())).strip("-")
