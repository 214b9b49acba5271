"""Kernel kinds and their rendering: `kernel-metadata.json` plus a thin script, so that what is
committed under `kernels/<slug>/` is what is pushed (a test renders and compares).

Tasks own their kernels: a `TaskSpec` lists `KernelKind`s (title, what it does, the runtime
function the script calls, its options with defaults and the Kaggle sources they name). This
module knows no task: it renders any kind the same way. Every script resolves its inputs under
either mount layout (root from KAGGLEKIT_KAGGLE_ROOT, default /kaggle), installs the code
dataset's wheels with `pip install --no-index --no-deps --find-links` (the kernels run with the
internet off), then calls `runtime(root=ROOT, **arguments)` with the options baked in as constants
(a pushed kernel takes no parameters).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kagglekit.io import atomic_write_text
from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.kind import COMMON_OPTIONS, KernelKind, KernelOption, slugify  # noqa: F401 (re-exported)
from kagglekit.kaggle.stage import CODE_SLUG, DEFAULT_OWNER

MACHINE_SHAPE = "NvidiaTeslaT4"  # "T4 x2"; `enable_gpu` alone gives a P100 the image's torch cannot drive


def kernel_kinds() -> dict[str, KernelKind]:
    """Every registered task's kernel kinds by name (a name declared twice is an error)."""
    from kagglekit.engine.task import TASKS

    kinds: dict[str, KernelKind] = {}
    for task in TASKS.names():
        for kind in TASKS.get(task).kernels:
            if kind.name in kinds:
                raise KaggleError(f"kernel kind {kind.name!r} is declared by two tasks (task {task!r} and an earlier one)")
            kinds[kind.name] = kind
    return kinds


def get_kind(name: str) -> KernelKind:
    kinds = kernel_kinds()
    if name not in kinds:
        raise KaggleError(f"unknown kernel kind {name!r}; valid: {', '.join(kinds) or 'none registered'}")
    return kinds[name]


def _literal(value: Any) -> str:
    """A Python literal in the formatter's style (double quotes; a multi-line text as a triple-quoted block)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_literal, value)) + "]"
    if isinstance(value, str):
        if "\n" in value and '"""' not in value and "\\" not in value:
            return '"""\n' + value.rstrip("\n") + '\n"""'
        return json.dumps(value)
    return repr(value)


HEADER = '''"""Kaggle kernel {id}: {summary}

Rendered by `kagglekit kaggle render-kernel {kind}` (a kind declared in {module}): render again
with other options rather than editing this file. The internet is off: the code dataset's wheels
(`kagglekit kaggle stage-code`) are installed from its mounted folder, then one call of
`{runtime}` does the work. Inputs are found under both mount layouts of
/kaggle/input (root overridable with KAGGLEKIT_KAGGLE_ROOT).
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

'''

BOOTSTRAP = '''
ROOT = Path(os.environ.get("KAGGLEKIT_KAGGLE_ROOT", "/kaggle"))


def install_code(handle: str) -> None:
    """pip-install the pinned wheels of the code dataset `handle` from its mounted folder, offline."""
    owner, slug = handle.split("/")[:2]
    inputs = ROOT / "input"
    for folder in (inputs / "datasets" / owner / slug, inputs / slug):  # newer and older mount layout
        if (folder / "manifest.json").is_file():
            break
    else:
        found = sorted(str(p.relative_to(inputs)) for p in inputs.glob("*/*"))
        sys.exit(f"code dataset {handle} is not attached: no manifest.json in datasets/{owner}/{slug} or {slug} of {found}")
    pins = [f"{w['name']}=={w['version']}" for w in json.loads((folder / "manifest.json").read_text())["wheels"]]
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
    subprocess.run([*pip, "--find-links", str(folder), *pins], check=True)
    importlib.invalidate_caches()


if "LOCAL_RANK" not in os.environ:  # torchrun's workers start after their launcher (this script) installed it
    install_code(CODE)
'''


def _default(value: Any, owner: str) -> Any:
    return value.format(owner=owner) if isinstance(value, str) else value


def _constant(name: str, value: Any, comment: str | None) -> str:
    line = f"{name.upper()} = {_literal(value)}"
    if not comment:
        return line + "\n"
    if "\n" in line:  # a block: the comment goes above it
        return f"# {comment}\n{line}\n"
    return f"{line}  # {comment}\n"


def _sources(kind: KernelKind, opts: dict[str, Any], code: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"dataset": [code], "competition": [], "kernel": [], "model": []}
    for name, option in kind.options.items():
        value = opts.get(name)
        if option.source is None or value is None:
            continue
        where = option.source
        if where == "weights":  # a dataset owner/slug, or a model owner/model/framework/variation/N
            where = "model" if str(value).count("/") == 4 else "dataset"
        if value not in found[where]:
            found[where].append(str(value))
    return found


def render_script(kind: KernelKind, kernel_id: str, code: str, arguments: dict[str, Any]) -> str:
    """The kernel's script: constants (the code dataset, then the runtime's arguments), the offline
    install, one call of the runtime."""
    module, function = kind.runtime.__module__, kind.runtime.__name__
    constants = _constant("code", code, "`kagglekit kaggle stage-code` output")
    for name, value in arguments.items():
        option = kind.options.get(name)
        constants += _constant(name, value, option.help if option else None)
    call = "".join(f"    {name}={name.upper()},\n" for name in arguments)
    return (
        HEADER.format(id=kernel_id, summary=kind.summary, kind=kind.name, module=module, runtime=f"{module}.{function}")
        + constants
        + BOOTSTRAP
        + f"from {module} import {function}  # noqa: E402 (installed just above)\n\n"
        + f"{function}(\n{call}    root=ROOT,\n)\n"
    )


def render_kernel(
    kind: str | KernelKind, out: str | os.PathLike | None = None, owner: str = DEFAULT_OWNER, **options: Any
) -> Path:
    """Write `kernel-metadata.json` and the script of a kernel kind into `out` (default kernels/<slug>).

    Common options: slug, title, code (the code dataset), machine_shape; the others are the kind's
    own (`KernelKind.options`, with their defaults). Unset options (None) take their defaults.
    """
    spec = get_kind(kind) if isinstance(kind, str) else kind
    given = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - set(COMMON_OPTIONS) - set(spec.options))
    if foreign:
        raise KaggleError(f"{spec.name} kernels take no {', '.join('--' + f.replace('_', '-') for f in foreign)}")
    opts = {name: _default(option.default, owner) for name, option in spec.options.items()}
    opts |= {name: spec.options[name].type(value) for name, value in given.items() if name in spec.options}
    slug = given.get("slug") or (slugify(given["title"]) if "title" in given else spec.slug)
    title = given.get("title") or (spec.title if slug == spec.slug else slug.replace("-", " "))
    if slugify(title) != slug:
        raise KaggleError(
            f"title {title!r} slugifies to {slugify(title)!r}, not the slug {slug!r}: Kaggle would rename the kernel"
        )
    code = given.get("code") or f"{owner}/{CODE_SLUG}"
    arguments = spec.prepare(dict(opts)) if spec.prepare is not None else opts
    sources = _sources(spec, opts, code)
    metadata = {
        "id": f"{owner}/{slug}",
        "title": title,
        "code_file": spec.code_file,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": True,
        "enable_internet": False,
        "machine_shape": given.get("machine_shape") or MACHINE_SHAPE,
        "dataset_sources": sources["dataset"],
        "competition_sources": sources["competition"],
        "kernel_sources": sources["kernel"],
        "model_sources": sources["model"],
    }
    out = Path(out) if out is not None else Path("kernels") / slug
    atomic_write_text(out / "kernel-metadata.json", json.dumps(metadata, indent=2) + "\n")
    atomic_write_text(out / spec.code_file, render_script(spec, f"{owner}/{slug}", code, arguments))
    return out
