"""`kagglekit kaggle validate DIR`: the metadata checks of the `kaggle` CLI (2.2), offline, plus
stricter ones for what the CLI lets through and Kaggle then silently gets wrong:

- kernels: `enable_internet` written explicitly (the CLI defaults it to true) and false for a
  kernel with competition sources (a code competition's submission kernel runs offline);
  `machine_shape` set when a GPU is on, and not a P100 (`enable_gpu` alone gives one, which the
  image's torch cannot drive); no prefixed sources (`datasets/...`, `code/...`, `c/...`, as
  `kernels pull -m` writes them: the server drops them with a warning); the id's slug equal to
  the slugified title (the CLI only warns); booleans as JSON booleans;
- datasets: slug and title of 6-50 characters, exactly one license, no sub-folders (skipped on
  upload without `-r`), and the files matching `manifest.json` when there is one;
- models: slugs, the framework name, booleans and the model slug of the instance.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kagglekit.kaggle import KaggleError
from kagglekit.kaggle.kernels import slugify
from kagglekit.kaggle.stage import MANIFEST, manifest_problems, uploaded_files

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
OWNER = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*$")
PREFIXES = {
    "dataset_sources": ("datasets/",),
    "kernel_sources": ("code/", "kernels/", "notebooks/"),
    "competition_sources": ("c/", "competitions/"),
    "model_sources": ("models/",),
}
# kagglesdk ModelFramework names as the CLI spells them (`pyTorch` -> MODEL_FRAMEWORK_PY_TORCH)
FRAMEWORKS = {
    "tensorFlow1",
    "tensorFlow2",
    "tfLite",
    "tfJs",
    "pyTorch",
    "jax",
    "flax",
    "pax",
    "maxText",
    "gemmaCpp",
    "ggml",
    "gguf",
    "coral",
    "scikitLearn",
    "mxnet",
    "onnx",
    "keras",
    "transformers",
    "api",
    "other",
    "tensorRtLlm",
    "triton",
    "vllm",
}
PLACEHOLDER = re.compile(r"INSERT_\w+_HERE")


def _load(path: Path, problems: list[str]) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: not readable JSON ({type(exc).__name__}: {exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.name}: expected a JSON object, found {type(data).__name__}")
        return None
    return data


def _placeholders(name: str, data: dict, problems: list[str]) -> None:
    for key, value in data.items():
        if isinstance(value, str) and PLACEHOLDER.search(value):
            problems.append(f"{name}: {key} still holds the template value {value!r}")


def kernel_problems(folder: Path) -> list[str]:
    name = "kernel-metadata.json"
    problems: list[str] = []
    meta = _load(folder / name, problems)
    if meta is None:
        return problems
    _placeholders(name, meta, problems)
    title = meta.get("title")
    if not isinstance(title, str) or len(title) < 5:
        problems.append(f"{name}: title must be at least five characters, found {title!r}")
    code = meta.get("code_file")
    if not code:
        problems.append(f"{name}: code_file must name the source file")
    elif not (folder / code).is_file():
        problems.append(f"{name}: code_file {code} not found in {folder}")
    language, kernel_type = meta.get("language"), meta.get("kernel_type")
    if language not in ("python", "r", "rmarkdown"):
        problems.append(f"{name}: language must be python, r or rmarkdown, found {language!r}")
    if kernel_type not in ("script", "notebook"):
        problems.append(f"{name}: kernel_type must be script or notebook, found {kernel_type!r}")
    elif code and language == "python" and Path(code).suffix != (".py" if kernel_type == "script" else ".ipynb"):
        problems.append(
            f"{name}: a python {kernel_type} kernel's code_file ends in {'.py' if kernel_type == 'script' else '.ipynb'}, found {code}"
        )
    kernel_id = meta.get("id")
    if not isinstance(kernel_id, str) or kernel_id.count("/") != 1:
        problems.append(f"{name}: id must be owner/slug (no version), found {kernel_id!r}")
    else:
        owner, slug = kernel_id.split("/")
        if not OWNER.match(owner) or not SLUG.match(slug) or len(slug) < 5:
            problems.append(f"{name}: id {kernel_id!r} is not a valid owner/slug (lowercase letters, digits, hyphens; slug >= 5)")
        elif isinstance(title, str) and slugify(title) != slug:
            problems.append(
                f"{name}: the slug {slug!r} differs from the slugified title {slugify(title)!r}; Kaggle would rename the kernel"
            )
    for key in ("is_private", "enable_gpu", "enable_internet"):
        if key in meta and not isinstance(meta[key], bool):
            problems.append(f"{name}: {key} must be true or false, found {meta[key]!r}")
    sources = {key: meta.get(key, []) for key in PREFIXES}
    for key, values in sources.items():
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            problems.append(f"{name}: {key} must be a list of non-empty strings, found {values!r}")
            sources[key] = []
    if "enable_internet" not in meta:
        problems.append(f"{name}: enable_internet is not set (the kaggle CLI then turns the internet on); write it explicitly")
    elif meta["enable_internet"] is not False and sources["competition_sources"]:
        problems.append(
            f"{name}: enable_internet must be false for a kernel with competition sources (code competitions run offline)"
        )
    shape = meta.get("machine_shape")
    if meta.get("enable_gpu") is True:
        if not shape:
            problems.append(
                f"{name}: enable_gpu without machine_shape gives a P100, which the image's torch cannot drive; set NvidiaTeslaT4 or NvidiaL4"
            )
        elif "p100" in str(shape).lower():
            problems.append(
                f"{name}: machine_shape {shape!r} is a P100, which the image's torch cannot drive; use NvidiaTeslaT4 or NvidiaL4"
            )
    elif shape:
        problems.append(f"{name}: machine_shape {shape!r} is set but enable_gpu is not true")
    for key, prefixes in PREFIXES.items():
        prefixed = [v for v in sources[key] if v.startswith(prefixes)]
        if prefixed:
            problems.append(
                f"{name}: {key} {prefixed} carry a prefix ({', '.join(prefixes)}) the server drops them for; write owner/slug"
            )
    for source in sources["dataset_sources"]:
        parts = source.split("/")
        if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and not parts[2].isdigit()):
            problems.append(f"{name}: dataset source {source!r} must be owner/slug or owner/slug/version")
    for source in sources["kernel_sources"]:
        parts = source.split("/")
        if len(parts) not in (2, 3) or not all(parts) or len(parts[1]) < 5:
            problems.append(f"{name}: kernel source {source!r} must be owner/slug[/version] with a slug of 5+ characters")
    for source in sources["competition_sources"]:
        if "/" in source:
            problems.append(f"{name}: competition source {source!r} must be the competition's slug alone")
    for source in sources["model_sources"]:
        parts = source.split("/")
        if len(parts) != 5 or not all(parts) or not parts[4].isdigit():
            problems.append(f"{name}: model source {source!r} must be owner/model/framework/variation/version (version a number)")
    pinning = meta.get("docker_image_pinning_type")
    if pinning is not None and pinning not in ("original", "latest"):
        problems.append(f"{name}: docker_image_pinning_type must be original or latest, found {pinning!r}")
    return problems


def dataset_problems(folder: Path) -> list[str]:
    name = "dataset-metadata.json"
    problems: list[str] = []
    meta = _load(folder / name, problems)
    if meta is None:
        return problems
    _placeholders(name, meta, problems)
    dataset_id, title = meta.get("id"), meta.get("title")
    if not isinstance(dataset_id, str) or dataset_id.count("/") != 1:
        problems.append(f"{name}: id must be owner/slug, found {dataset_id!r}")
    else:
        owner, slug = dataset_id.split("/")
        if not OWNER.match(owner) or not SLUG.match(slug):
            problems.append(f"{name}: id {dataset_id!r} is not a valid owner/slug (lowercase letters, digits, hyphens)")
        if not 6 <= len(slug) <= 50:
            problems.append(f"{name}: the dataset slug must be 6-50 characters, {slug!r} has {len(slug)}")
    if not isinstance(title, str) or not 6 <= len(title) <= 50:
        problems.append(f"{name}: the dataset title must be 6-50 characters, found {title!r}")
    licenses = meta.get("licenses")
    if not isinstance(licenses, list) or len(licenses) != 1 or not isinstance(licenses[0], dict) or not licenses[0].get("name"):
        problems.append(f'{name}: licenses must hold exactly one {{"name": ...}}, found {licenses!r}')
    subtitle = meta.get("subtitle")
    if subtitle and not 20 <= len(subtitle) <= 80:
        problems.append(f"{name}: a subtitle must be 20-80 characters, found {len(subtitle)}")
    problems += _upload_problems(folder)
    return problems


def _upload_problems(folder: Path) -> list[str]:
    """Sub-folders (skipped by the CLI without -r), nothing to upload, a manifest that no longer matches."""
    problems = []
    folders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if folders:
        problems.append(f"sub-folders {folders} would be skipped by `kaggle datasets create` (no -r zip|tar); stage flat folders")
    if not uploaded_files(folder) and not (folder / MANIFEST).is_file():
        problems.append(f"{folder}: no files to upload")
    if (folder / MANIFEST).is_file():
        try:
            problems += manifest_problems(folder)
        except KaggleError as exc:
            problems.append(str(exc))
    return problems


def model_problems(folder: Path) -> list[str]:
    problems: list[str] = []
    model_slug = None
    if (folder / "model-metadata.json").is_file():
        name = "model-metadata.json"
        meta = _load(folder / name, problems) or {}
        _placeholders(name, meta, problems)
        if not OWNER.match(str(meta.get("ownerSlug", ""))):
            problems.append(f"{name}: ownerSlug {meta.get('ownerSlug')!r} is not a valid owner")
        model_slug = meta.get("slug")
        if not SLUG.match(str(model_slug or "")):
            problems.append(f"{name}: slug {model_slug!r} must be lowercase letters, digits and single hyphens")
        if not meta.get("title"):
            problems.append(f"{name}: title is required")
        if not isinstance(meta.get("isPrivate"), bool):
            problems.append(f"{name}: isPrivate must be true or false, found {meta.get('isPrivate')!r}")
        if "description" not in meta:
            problems.append(f"{name}: description is required (may be empty)")
    if (folder / "model-instance-metadata.json").is_file():
        name = "model-instance-metadata.json"
        meta = _load(folder / name, problems) or {}
        _placeholders(name, meta, problems)
        if not OWNER.match(str(meta.get("ownerSlug", ""))):
            problems.append(f"{name}: ownerSlug {meta.get('ownerSlug')!r} is not a valid owner")
        for key in ("modelSlug", "instanceSlug"):
            if not SLUG.match(str(meta.get(key) or "")):
                problems.append(f"{name}: {key} {meta.get(key)!r} must be lowercase letters, digits and single hyphens")
        if model_slug is not None and meta.get("modelSlug") != model_slug:
            problems.append(f"{name}: modelSlug {meta.get('modelSlug')!r} differs from model-metadata.json's slug {model_slug!r}")
        if meta.get("framework") not in FRAMEWORKS:
            problems.append(f"{name}: framework {meta.get('framework')!r} is not one Kaggle knows (e.g. pyTorch)")
        if not meta.get("licenseName"):
            problems.append(f"{name}: licenseName is required")
        if not isinstance(meta.get("fineTunable", False), bool):
            problems.append(f"{name}: fineTunable must be true or false")
        if not isinstance(meta.get("trainingData", []), list):
            problems.append(f"{name}: trainingData must be a list")
        if not (folder / "dataset-metadata.json").is_file():
            problems += _upload_problems(folder)
    return problems


def validate_folder(folder: str | Path) -> list[str]:
    """The metadata files checked in `folder`; raises KaggleError naming every problem found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KaggleError(f"{folder}: not a folder")
    checks = {
        "kernel-metadata.json": kernel_problems,
        "dataset-metadata.json": dataset_problems,
        "model-metadata.json": model_problems,
        "model-instance-metadata.json": model_problems,
    }
    present = [name for name in checks if (folder / name).is_file()]
    if not present:
        raise KaggleError(f"{folder}: no kernel-metadata.json, dataset-metadata.json or model(-instance)-metadata.json")
    problems: list[str] = []
    for check in dict.fromkeys(checks[name] for name in present):
        problems += check(folder)
    if problems:
        raise KaggleError(f"{folder}: " + "; ".join(problems))
    return present
