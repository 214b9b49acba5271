"""The kernels of `kernels/<slug>/`: `kernel-metadata.json` and a thin script, rendered from one
template per kind so that what is committed is what is pushed (a test renders and compares).

Every script resolves its inputs under either mount layout (root from KAGGLEKIT_KAGGLE_ROOT,
default /kaggle), installs the code dataset's wheels with `pip install --no-index --no-deps
--find-links` (the kernels run with the internet off) and calls one function of
`kagglekit.kaggle.runtime`. Kinds:
- fwi-submission: predict the waveform-inversion test set, blend, optionally refine, submission.csv;
- fwi-training: train one fold of a config (embedded in the script) on 2 GPUs with torchrun,
  `epochs_per_session` epochs per Kaggle session, resuming from the kernel's earlier output;
- vision-submission: an image-classification competition (train.csv + image folders) -> submission.csv.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kagglekit.io import atomic_write_text
from kagglekit.kaggle import KaggleError, project_root
from kagglekit.kaggle.stage import CODE_SLUG, DEFAULT_OWNER

MACHINE_SHAPE = "NvidiaTeslaT4"  # "T4 x2"; `enable_gpu` alone gives a P100 the image's torch cannot drive
DEFAULT_TRAINING_CONFIG = "configs/fwi/hgnet_b2.yaml"


@dataclass(frozen=True)
class Kind:
    slug: str
    title: str
    code_file: str
    options: tuple[str, ...]  # render options this kind takes besides the common ones


KINDS = {
    "fwi-submission": Kind(
        "kagglekit-fwi-submission",
        "kagglekit FWI submission",
        "submission.py",
        ("weights", "competition", "batch_size", "refine_minutes"),
    ),
    "fwi-training": Kind(
        "kagglekit-fwi-training",
        "kagglekit FWI training",
        "training.py",
        ("data", "config", "fold", "epochs_per_session", "resume_from"),
    ),
    "vision-submission": Kind(
        "kagglekit-vision-submission",
        "kagglekit vision submission",
        "submission.py",
        ("weights", "competition", "batch_size", "train_csv", "train_images", "test_images"),
    ),
}
DEFAULTS = {
    "fwi-submission": {"competition": "waveform-inversion", "batch_size": 64, "refine_minutes": 0.0},
    "fwi-training": {"fold": 0, "epochs_per_session": 10},
    "vision-submission": {
        "competition": "cassava-leaf-disease-classification",
        "batch_size": 128,
        "train_csv": "train.csv",
        "train_images": "train_images",
        "test_images": "test_images",
    },
}


def slugify(title: str) -> str:
    """The slug Kaggle derives from an (ASCII) title: lowercase words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"['\"]", "", title.lower())).strip("-")


def _literal(value) -> str:
    """A Python literal in the formatter's style (double quotes)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


HEADER = '''"""Kaggle kernel {id}: {summary}

Rendered by `kagglekit kaggle render-kernel {kind}` from src/kagglekit/kaggle/kernels.py: render
again with other options rather than editing this file. The internet is off: the code dataset's
wheels (`kagglekit kaggle stage-code`) are installed from its mounted folder, then one call of
`kagglekit.kaggle.runtime` does the work. Inputs are found under both mount layouts of
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


install_code(CODE)
'''

BODIES = {
    "fwi-submission": (
        "the waveform-inversion test set -> /kaggle/working/submission.csv.",
        """CODE = {code}  # `kagglekit kaggle stage-code` output
WEIGHTS = {weights}  # `kagglekit kaggle stage-weights` output: a dataset, or a model owner/model/framework/variation/N
COMPETITION = {competition}
# refine_minutes > 0: refine the blend by physics within that budget (where this kagglekit can)
OPTIONS = {options}
""",
        """from kagglekit.kaggle.runtime import fwi_submission  # noqa: E402 (installed just above)

fwi_submission(weights=WEIGHTS, competition=COMPETITION, root=ROOT, **OPTIONS)
""",
    ),
    "fwi-training": (
        "train one fold of a waveform-inversion config, resumable across sessions.",
        """CODE = {code}  # `kagglekit kaggle stage-code` output
DATA = {data}  # `kagglekit fwi convert` output, uploaded as a dataset
PREVIOUS = {resume_from}  # this kernel's earlier output to continue from (`render-kernel --resume-from`)
FOLD = {fold}
EPOCHS_PER_SESSION = {epochs_per_session}  # per session (`train --stop-after`; None: to the end); then push with PREVIOUS set
CONFIG_NAME = {config_name}
CONFIG_YAML = {config_yaml}
""",
        """from kagglekit.kaggle.runtime import fwi_training  # noqa: E402 (installed just above)

fwi_training(
    data=DATA,
    config_name=CONFIG_NAME,
    config_yaml=CONFIG_YAML,
    fold=FOLD,
    epochs_per_session=EPOCHS_PER_SESSION,
    previous=PREVIOUS,
    root=ROOT,
)
""",
    ),
    "vision-submission": (
        "an image-classification test set -> /kaggle/working/submission.csv.",
        """CODE = {code}  # `kagglekit kaggle stage-code` output
WEIGHTS = {weights}  # `kagglekit kaggle stage-weights` output of vision runs (dataset or model)
COMPETITION = {competition}
LAYOUT = {layout}  # the competition's files
OPTIONS = {options}
""",
        """from kagglekit.kaggle.runtime import vision_submission  # noqa: E402 (installed just above)

vision_submission(weights=WEIGHTS, competition=COMPETITION, root=ROOT, **LAYOUT, **OPTIONS)
""",
    ),
}


def _config_source(config: str | os.PathLike | None) -> tuple[str, str]:
    """(config name, YAML text) of the training kernel's config file."""
    if config is None:
        root = project_root()
        if root is None:
            raise KaggleError("fwi-training: pass --config (a config YAML); there is no source checkout to take the default from")
        config = root / DEFAULT_TRAINING_CONFIG
    path = Path(config)
    from kagglekit.config import load_config

    cfg = load_config(path)  # it must be a valid config before it goes to Kaggle
    if cfg.task != "fwi":
        raise KaggleError(f"{path}: a '{cfg.task}' config; the fwi-training kernel trains waveform-inversion configs")
    return cfg.name, path.read_text()


def _yaml_literal(text: str) -> str:
    if '"""' in text or "\\" in text:
        return json.dumps(text)
    return '"""\n' + text.rstrip("\n") + '\n"""'


def render_kernel(kind: str, out: str | os.PathLike | None = None, owner: str = DEFAULT_OWNER, **options) -> Path:
    """Write `kernel-metadata.json` and the script of a kernel `kind` into `out` (default kernels/<slug>).

    Common options: slug, title, code (the code dataset), machine_shape; the others depend on the kind
    (KINDS[kind].options, defaults in DEFAULTS). Unset options (None) take their defaults.
    """
    if kind not in KINDS:
        raise KaggleError(f"unknown kernel kind {kind!r}; valid: {', '.join(KINDS)}")
    spec = KINDS[kind]
    given = {k: v for k, v in options.items() if v is not None}
    common = {"slug", "title", "code", "machine_shape"}
    foreign = sorted(set(given) - common - set(spec.options))
    if foreign:
        raise KaggleError(f"{kind} kernels take no {', '.join('--' + f.replace('_', '-') for f in foreign)}")
    opts = {**DEFAULTS[kind], **given}
    slug = opts.get("slug") or (slugify(opts["title"]) if "title" in opts else spec.slug)
    title = opts.get("title") or (spec.title if slug == spec.slug else slug.replace("-", " "))
    if slugify(title) != slug:
        raise KaggleError(
            f"title {title!r} slugifies to {slugify(title)!r}, not the slug {slug!r}: Kaggle would rename the kernel"
        )
    code = opts.get("code") or f"{owner}/{CODE_SLUG}"
    values = {"code": _literal(code)}
    datasets, competitions, kernels, models = [code], [], [], []
    if "weights" in spec.options:
        weights = opts.get("weights") or f"{owner}/kagglekit-{kind.split('-')[0]}-weights"
        (models if weights.count("/") == 4 else datasets).append(weights)
        competitions.append(opts["competition"])
        values |= {"weights": _literal(weights), "competition": _literal(opts["competition"])}
    if kind == "fwi-submission":
        values["options"] = _literal({"batch_size": opts["batch_size"], "refine_minutes": float(opts["refine_minutes"])})
    elif kind == "vision-submission":
        values["layout"] = _literal({k: opts[k] for k in ("train_csv", "train_images", "test_images")})
        values["options"] = _literal({"batch_size": opts["batch_size"]})
    else:
        data = opts.get("data") or f"{owner}/kagglekit-fwi-converted"
        datasets.append(data)
        if opts.get("resume_from"):
            kernels.append(opts["resume_from"])
        name, text = _config_source(opts.get("config"))
        values |= {
            "data": _literal(data),
            "resume_from": _literal(opts.get("resume_from")),
            "fold": _literal(int(opts["fold"])),
            "epochs_per_session": _literal(int(opts["epochs_per_session"]) or None),
            "config_name": _literal(name),
            "config_yaml": _yaml_literal(text),
        }
    summary, constants, call = BODIES[kind]
    script = HEADER.format(id=f"{owner}/{slug}", summary=summary, kind=kind) + constants.format(**values) + BOOTSTRAP + call
    metadata = {
        "id": f"{owner}/{slug}",
        "title": title,
        "code_file": spec.code_file,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": True,
        "enable_internet": False,
        "machine_shape": opts.get("machine_shape") or MACHINE_SHAPE,
        "dataset_sources": datasets,
        "competition_sources": competitions,
        "kernel_sources": kernels,
        "model_sources": models,
    }
    out = Path(out) if out is not None else Path("kernels") / slug
    atomic_write_text(out / "kernel-metadata.json", json.dumps(metadata, indent=2) + "\n")
    atomic_write_text(out / spec.code_file, script)
    return out
