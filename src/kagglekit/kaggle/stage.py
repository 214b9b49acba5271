"""`kaggle stage-code` and `kaggle stage-weights`: flat folders ready for upload, with manifests.

A code folder holds `dataset-metadata.json`, wheels only (`kaggle datasets create` skips
sub-folders unless told otherwise, and a wheel is one file) and `manifest.json`: sha256 and size
of every file, and the pins a kernel installs (`pip install --no-index --no-deps --find-links`).

A weights folder holds each run's `best.pt` and resolved `config.yaml` as
`<config>__<fold>.pt|.yaml` (flat, for the same reason), `ensemble.json` when given, the metadata
of a dataset (`dataset-metadata.json`) and of a Kaggle Model and its instance
(`model-metadata.json`, `model-instance-metadata.json`, framework pyTorch), and `manifest.json`
listing the runs; the `kaggle` CLI uploads none of the metadata files, so the one folder serves both.

A folder is built in `.<name>.partial/` and replaces OUT only when complete; an OUT holding
anything but an earlier staging of the same kind is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from kagglekit.io import atomic_dir
from kagglekit.kaggle import KaggleError, project_root

MANIFEST = "manifest.json"
CODE_KIND, WEIGHTS_KIND = "kagglekit-code", "kagglekit-weights"
METADATA_FILES = (
    "dataset-metadata.json",
    "datapackage.json",
    "kernel-metadata.json",
    "model-metadata.json",
    "model-instance-metadata.json",
)
DEFAULT_OWNER = "kagglekit"
CODE_SLUG, CODE_TITLE = "kagglekit-code", "kagglekit code"
FRAMEWORK = "pyTorch"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def uploaded_files(folder: Path) -> list[Path]:
    """The files `kaggle datasets create -p folder` uploads: all but the metadata files."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in METADATA_FILES and p.name != MANIFEST)


def write_manifest(folder: Path, manifest: dict) -> dict:
    """`manifest` plus the sha256 and size of every uploaded file, written to folder/manifest.json."""
    manifest = {
        **manifest,
        "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in uploaded_files(folder)},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KaggleError(f"{path}: not a manifest written by `kagglekit kaggle stage-*` ({type(exc).__name__}: {exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("kind") not in (CODE_KIND, WEIGHTS_KIND):
        raise KaggleError(f"{path}: expected a manifest of kind {CODE_KIND} or {WEIGHTS_KIND}, found {str(manifest)[:80]}")
    return manifest


def manifest_problems(folder: Path) -> list[str]:
    """Files missing, changed (size or sha256) or not listed since staging."""
    manifest = read_manifest(folder)
    listed = manifest.get("files", {})
    problems = []
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is listed in {MANIFEST} but missing")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{name} changed since it was staged (size or sha256 differ from {MANIFEST})")
    extra = [p.name for p in uploaded_files(folder) if p.name not in listed]
    if extra:
        problems.append(f"files not in {MANIFEST} would be uploaded too: {extra}")
    return problems


def dataset_metadata(owner: str, slug: str, title: str, license_name: str, description: str) -> dict:
    return {"title": title, "id": f"{owner}/{slug}", "licenses": [{"name": license_name}], "description": description}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike, kind: str) -> Iterator[Path]:
    """An empty `.<name>.partial/` that replaces `out` on success; `out` may only hold an earlier staging of `kind`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        try:
            earlier = read_manifest(out)["kind"]
        except KaggleError:
            earlier = None
        if earlier != kind:
            raise FileExistsError(f"{out}: exists and is not a {kind} folder staged earlier; remove it or choose another")
    with atomic_dir(out, replace=True) as partial:
        yield partial


def _source_commit() -> str | None:
    """The git commit of the source checkout (with '+dirty' for uncommitted changes), if any."""
    root = project_root()
    if root is None or not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty.stdout.strip() else "")


def stage_code(
    out: str | os.PathLike,
    owner: str = DEFAULT_OWNER,
    slug: str = CODE_SLUG,
    title: str = CODE_TITLE,
    find_links: tuple[str | os.PathLike, ...] = (),
    download: bool = True,
    include: tuple[str, ...] = (),
    license_name: str = "other",
    compress_level: int | None = None,
) -> tuple[Path, dict]:
    """kagglekit's wheel and the wheels of its dependencies Kaggle's image lacks, as a dataset folder
    (`compress_level`: deflate level 0-9 of repacked wheels, 0 = stored; default REPACK_LEVEL)."""
    from kagglekit.kaggle.wheels import KAGGLE_PLATFORM, KAGGLE_PYTHON, REPACK_LEVEL, collect_wheels

    with staging_dir(out, CODE_KIND) as partial:
        level = REPACK_LEVEL if compress_level is None else compress_level
        wheels = collect_wheels(partial, tuple(map(Path, find_links)), download, include, compresslevel=level)
        description = (
            "kagglekit and the wheels of its dependencies that Kaggle's image lacks, for offline kernels: "
            "`pip install --no-index --no-deps --find-links <this folder> "
            + " ".join(f"{w.name}=={w.version}" for w in wheels)
            + "`. "
            "Each wheel keeps its own license."
        )
        _write_json(partial / "dataset-metadata.json", dataset_metadata(owner, slug, title, license_name, description))
        manifest = write_manifest(
            partial,
            {
                "kind": CODE_KIND,
                "dataset": f"{owner}/{slug}",
                "python": KAGGLE_PYTHON,
                "platform": KAGGLE_PLATFORM,
                "commit": _source_commit(),
                "wheels": [{"file": w.path.name, "name": w.name, "version": w.version, "source": w.source} for w in wheels],
            },
        )
    return Path(out), manifest


def _model_metadata(owner: str, model: str, task: str) -> dict:
    return {
        "ownerSlug": owner,
        "title": f"kagglekit {task}",
        "slug": model,
        "subtitle": "",
        "isPrivate": True,
        "description": f"kagglekit {task} run weights (best.pt + resolved config.yaml per run), staged by `kagglekit kaggle stage-weights`.",
        "publishTime": "",
        "provenanceSources": "",
    }


def _instance_metadata(owner: str, model: str, variation: str, runs: list[dict], license_name: str) -> dict:
    listing = "\n".join(f"- `{r['weights']}` + `{r['config_file']}`: {r['config']} {r['fold']}" for r in runs)
    return {
        "ownerSlug": owner,
        "modelSlug": model,
        "instanceSlug": variation,
        "framework": FRAMEWORK,
        "overview": f"kagglekit runs:\n{listing}",
        "usage": "Attach to a kagglekit kernel (`kagglekit kaggle render-kernel`; see kernels/ in the kagglekit repository).",
        "licenseName": license_name,
        "fineTunable": False,
        "trainingData": [],
        "modelInstanceType": "Unspecified",
        "baseModelInstanceId": 0,
        "externalBaseModelUrl": "",
    }


def stage_weights(
    runs: list[str | os.PathLike],
    out: str | os.PathLike,
    ensemble: str | os.PathLike | None = None,
    owner: str = DEFAULT_OWNER,
    slug: str | None = None,
    title: str | None = None,
    model: str | None = None,
    variation: str = "default",
    license_name: str = "CC0-1.0",
    model_license: str = "Apache 2.0",
) -> tuple[Path, dict]:
    """best.pt + resolved config.yaml of each run (run folders or config folders), flat, as a dataset
    and a Kaggle Model instance folder."""
    from kagglekit.config import save_config
    from kagglekit.engine.checkpoint import load_checkpoint
    from kagglekit.engine.runs import RunFolder, load_weights, run_folders, without_starting_weights
    from kagglekit.engine.task import build_task

    folders = run_folders(runs)
    entries, tasks = [], set()
    with staging_dir(out, WEIGHTS_KIND) as partial:
        for run in folders:
            folder = RunFolder(run)
            cfg = folder.config()
            best = load_checkpoint(folder.best, required=("model",))
            # the pair the kernel will load: a config that cannot build, or weights that do not fit, fail here
            load_weights(build_task(without_starting_weights(cfg)).build_model(), best["model"], folder.best, folder.config_path)
            stem = f"{cfg.name}__{run.name}"
            if (partial / f"{stem}.pt").exists():
                raise KaggleError(
                    f"{run}: a run of config {cfg.name} {run.name} is staged already; stage one folder per (config, fold)"
                )
            shutil.copyfile(folder.best, partial / f"{stem}.pt")
            save_config(cfg, partial / f"{stem}.yaml")
            tasks.add(cfg.task)
            metrics = {k: v for k, v in (best.get("metrics") or {}).items() if "/" not in k}
            entries.append(
                {
                    "config": cfg.name,
                    "fold": run.name,
                    "weights": f"{stem}.pt",
                    "config_file": f"{stem}.yaml",
                    "best_epoch": None if best.get("epoch") is None else best["epoch"] + 1,
                    "metrics": metrics,
                }
            )
        if len(tasks) != 1:
            raise KaggleError(f"runs of several tasks {sorted(tasks)}: stage each task's runs into its own folder")
        (task,) = tasks
        if ensemble is not None:
            _stage_ensemble(Path(ensemble), {e["config"] for e in entries}, partial / "ensemble.json")
        slug = slug or f"kagglekit-{task}-weights"
        model = model or f"kagglekit-{task}"
        description = f"kagglekit {task} weights: " + ", ".join(f"{e['config']}/{e['fold']}" for e in entries)
        _write_json(
            partial / "dataset-metadata.json",
            dataset_metadata(owner, slug, title or f"kagglekit {task} weights", license_name, description),
        )
        _write_json(partial / "model-metadata.json", _model_metadata(owner, model, task))
        _write_json(partial / "model-instance-metadata.json", _instance_metadata(owner, model, variation, entries, model_license))
        manifest = write_manifest(
            partial,
            {
                "kind": WEIGHTS_KIND,
                "task": task,
                "dataset": f"{owner}/{slug}",
                "model": f"{owner}/{model}/{FRAMEWORK}/{variation}",
                "runs": entries,
                "ensemble": "ensemble.json" if ensemble is not None else None,
            },
        )
    return Path(out), manifest


def _stage_ensemble(path: Path, configs: set[str], target: Path) -> None:
    """Copy an ensemble.json (e.g. `fwi ensemble`'s) whose members (`config` or `config/fold`) are all staged configs."""
    try:
        members = json.loads(path.read_text())["members"]
        names = {str(m).split("/")[0] for m in members}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KaggleError(f"{path}: not an ensemble.json with a 'members' list ({type(exc).__name__}: {exc})") from None
    missing = sorted(names - configs)
    if missing:
        raise KaggleError(
            f"{path}: blends {missing}, which none of the staged runs belongs to (staged configs: {sorted(configs)})"
        )
    shutil.copyfile(path, target)
