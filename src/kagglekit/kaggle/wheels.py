"""Wheels for Kaggle's image: the project's own and those of the runtime dependencies it lacks.

The target is Kaggle's Python: CPython 3.11 on manylinux x86_64 (KAGGLE_PYTHON, KAGGLE_PLATFORM).
What to stage is the closure of kagglekit's runtime requirements (markers evaluated for that
target) minus what the image already has (KAGGLE_IMAGE_HAS); each at the version installed here,
the one the tests ran. A dependency's wheel comes from the first source that has one for the
target: a `--find-links` folder, the copy installed here (repacked file by file from its RECORD
when its tags suit the target, so no network is needed), or PyPI (`pip download` for the target
platform) unless downloads are off. The project's own wheel is built from the source checkout
(`pip wheel --no-build-isolation` on a copy, so the checkout gets no build/ folder) or, for an
installed kagglekit, repacked like a dependency.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kagglekit.kaggle import KaggleError, project_root

KAGGLE_PYTHON = "3.11"
KAGGLE_PLATFORM = "manylinux_2_28_x86_64"
# What Kaggle's Python image ships (docs/reference/kaggle-facts.md) and what those pull in: never staged.
KAGGLE_IMAGE_HAS = frozenset(
    {
        "torch",
        "torchvision",
        "timm",
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "albumentations",
        "matplotlib",
        "pyarrow",
        "pydantic",
        "pyyaml",
        "tqdm",
        "pillow",
        "huggingface-hub",
        "safetensors",
        "packaging",
        "requests",
        "filelock",
        "fsspec",
        "typing-extensions",
    }
)
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")
REPACK_LEVEL = 1  # deflate level of repacked wheels: deepwave's 356 MB pack to ~103 MB in seconds (0: stored)


@dataclass
class Wheel:
    path: Path
    name: str  # distribution name, as its metadata spells it
    version: str
    source: str  # where it came from (printed and kept in the manifest)


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _target_environment(python: str) -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def runtime_requirements(
    project: str = "kagglekit", include: tuple[str, ...] = (), python: str = KAGGLE_PYTHON
) -> list[tuple[str, str]]:
    """(name, installed version) of every runtime dependency of `project` (plus `include`) that the
    Kaggle image lacks, dependencies of dependencies included, in discovery order."""
    from packaging.requirements import Requirement

    env = _target_environment(python)
    wanted = {canonical(name) for name in include}
    found: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    todo = [(project, True)] + [(name, False) for name in include]
    while todo:
        name, is_project = todo.pop(0)
        key = canonical(name)
        if key in seen or (not is_project and key in KAGGLE_IMAGE_HAS and key not in wanted):
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise KaggleError(
                f"{name} is needed on Kaggle but not installed here, so its version is unknown: install it (pip install {name})"
            ) from None
        if not is_project:
            found[key] = (dist.metadata["Name"], dist.version)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append((req.name, False))
    return list(found.values())


def parse_wheel_name(filename: str) -> tuple[str, str, set[tuple[str, str, str]]]:
    """(name, version, {(python, abi, platform)}) from a wheel's file name (compressed tag sets expanded)."""
    m = WHEEL_NAME.match(filename)
    if not m:
        raise KaggleError(f"{filename}: not a wheel file name (name-version-python-abi-platform.whl)")
    tags = {(p, a, x) for p in m["py"].split(".") for a in m["abi"].split(".") for x in m["plat"].split(".")}
    return m["name"], m["version"], tags


def _platform_ok(platform: str, target: str) -> bool:
    if platform == "any":
        return True
    target_glibc = tuple(map(int, re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", target).groups()))
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
    if m:
        return (int(m[1]), int(m[2])) <= target_glibc
    legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_x86_64", platform)
    return bool(legacy) and LEGACY_MANYLINUX[legacy[1]] <= target_glibc


def suits_kaggle(tags: set[tuple[str, str, str]], python: str = KAGGLE_PYTHON, platform: str = KAGGLE_PLATFORM) -> bool:
    """Whether a wheel with these tags installs on the target Python and platform."""
    minor = int(python.split(".")[1])
    cp = f"cp3{minor}"
    pythons = {"py3", f"py3{minor}", cp}
    stable = {f"cp3{k}" for k in range(2, minor + 1)}  # abi3 wheels built for an older CPython 3
    return any(
        (py in pythons and abi in {"none", cp} or py in stable and abi == "abi3") and _platform_ok(plat, platform)
        for py, abi, plat in tags
    )


def _installed_tags(dist: importlib.metadata.Distribution) -> set[tuple[str, str, str]]:
    text = dist.read_text("WHEEL") or ""
    return {tuple(line.split(":", 1)[1].strip().split("-")) for line in text.splitlines() if line.startswith("Tag:")}


def _record_hash(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def repack_installed(name: str, out_dir: Path, compresslevel: int = REPACK_LEVEL) -> Wheel:
    """A wheel of the installed distribution `name`, rebuilt from the files its RECORD lists.

    Console scripts (outside site-packages) are left out: pip writes them again from
    entry_points.txt. Byte-identical for the same installed files (fixed timestamps).
    """
    dist = importlib.metadata.distribution(name)
    tags = _installed_tags(dist)
    files = dist.files
    if not tags or files is None:
        raise KaggleError(f"{name} {dist.version}: the installed copy has no WHEEL tags or RECORD; cannot repack it")
    if json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
        raise KaggleError(f"{name} {dist.version} is an editable install; build its wheel from the source instead")
    info_dir = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if info_dir is None:
        raise KaggleError(f"{name} {dist.version}: its RECORD lists no .dist-info folder; cannot repack it")
    skip = {f"{info_dir}/{n}" for n in ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")}
    base = Path(dist.locate_file(""))
    entries = []
    for f in files:
        rel = f.as_posix()
        if rel.startswith("../"):
            if "/bin/" not in rel:
                raise KaggleError(
                    f"{name} {dist.version} installed {rel} outside site-packages; get its wheel with --find-links or download"
                )
            continue
        if rel in skip or "__pycache__/" in rel or rel.endswith(".pyc"):
            continue
        if not (base / rel).is_file():
            raise KaggleError(f"{base / rel}: listed in {name}'s RECORD but missing; reinstall {name}")
        entries.append(rel)
    entries.sort(key=lambda r: (r.startswith(info_dir), r))  # .dist-info last, as the wheel format recommends
    py, abi, plat = (".".join(dict.fromkeys(t[k] for t in sorted(tags))) for k in range(3))
    target = Path(out_dir) / f"{info_dir.removesuffix('.dist-info')}-{py}-{abi}-{plat}.whl"
    record = []
    method = zipfile.ZIP_DEFLATED if compresslevel > 0 else zipfile.ZIP_STORED
    with zipfile.ZipFile(target, "w", compression=method, compresslevel=compresslevel or None) as zf:
        for rel in entries:
            src = base / rel
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (src.stat().st_mode & 0xFFFF) << 16
            info.compress_type = method
            digest, size = hashlib.sha256(), 0
            with open(src, "rb") as fin, zf.open(info, "w") as fout:
                while chunk := fin.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    fout.write(chunk)
            record.append(f"{rel},{_record_hash(digest.digest())},{size}")
        record.append(f"{info_dir}/RECORD,,")
        info = zipfile.ZipInfo(f"{info_dir}/RECORD", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, "\n".join(record) + "\n", compress_type=method)
    return Wheel(target, dist.metadata["Name"], dist.version, "repacked from the installed copy")


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def build_project_wheel(out_dir: Path, download: bool = True, compresslevel: int = REPACK_LEVEL) -> Wheel:
    """kagglekit's own wheel: built from the source checkout, or repacked from an installed copy."""
    root = project_root()
    if root is None:
        return repack_installed("kagglekit", out_dir, compresslevel)
    isolation = [] if importlib.util.find_spec("setuptools") else ["--use-pep517"]
    if isolation and not download:
        raise KaggleError("building kagglekit's wheel needs setuptools here (pip install setuptools) or downloads allowed")
    with tempfile.TemporaryDirectory(prefix="kagglekit-build-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(
            root / "src" / "kagglekit", src / "src" / "kagglekit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        flags = ["--no-build-isolation", "--no-index"] if not isolation else isolation
        result = _pip("wheel", "--no-deps", "--disable-pip-version-check", "-q", *flags, "-w", str(Path(tmp) / "dist"), str(src))
        if result.returncode != 0:
            raise KaggleError(f"building kagglekit's wheel from {root} failed: {result.stderr.strip()[-800:]}")
        (built,) = Path(tmp, "dist").glob("*.whl")
        target = Path(out_dir) / built.name
        shutil.move(built, target)
    _, version, _ = parse_wheel_name(target.name)
    return Wheel(target, "kagglekit", version, f"built from {root}")


def download_wheel(name: str, version: str, out_dir: Path, python: str, platform: str) -> Wheel:
    """`pip download` of `name==version` for the target (binary wheels only, no dependencies)."""
    with tempfile.TemporaryDirectory(prefix="kagglekit-download-") as tmp:
        result = _pip(
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--platform",
            platform,
            "--dest",
            tmp,
            f"{name}=={version}",
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise KaggleError(f"pip download {name}=={version} for {platform} failed: {result.stderr.strip()[-800:]}")
        target = Path(out_dir) / wheels[0].name
        shutil.move(wheels[0], target)
    return Wheel(target, name, version, f"downloaded from PyPI for cp{python.replace('.', '')} {platform}")


def dependency_wheel(
    name: str,
    version: str,
    out_dir: Path,
    find_links: tuple[Path, ...],
    download: bool,
    python: str,
    platform: str,
    compresslevel: int = REPACK_LEVEL,
) -> Wheel:
    """The target's wheel of `name==version`: from --find-links, the installed copy, or PyPI."""
    for folder in map(Path, find_links):
        for path in sorted(folder.glob("*.whl")):
            wname, wversion, tags = parse_wheel_name(path.name)
            if canonical(wname) == canonical(name) and wversion == version and suits_kaggle(tags, python, platform):
                shutil.copy2(path, Path(out_dir) / path.name)
                return Wheel(Path(out_dir) / path.name, name, version, f"copied from {folder}")
    installed = _installed_tags(importlib.metadata.distribution(name))
    if suits_kaggle(installed, python, platform):
        return repack_installed(name, out_dir, compresslevel)
    if download:
        return download_wheel(name, version, out_dir, python, platform)
    shown = sorted("-".join(t) for t in installed)
    raise KaggleError(
        f"{name} {version}: no wheel for cp{python.replace('.', '')} {platform} in --find-links {[str(f) for f in find_links]}, "
        f"and the installed copy is {shown}; allow downloads or pass --find-links with that wheel"
    )


def collect_wheels(
    out_dir: Path,
    find_links: tuple[Path, ...] = (),
    download: bool = True,
    include: tuple[str, ...] = (),
    python: str = KAGGLE_PYTHON,
    platform: str = KAGGLE_PLATFORM,
    compresslevel: int = REPACK_LEVEL,
) -> list[Wheel]:
    """kagglekit's wheel and those of its dependencies the image lacks, written into `out_dir`."""
    wheels = [build_project_wheel(out_dir, download, compresslevel)]
    for name, version in runtime_requirements(include=include, python=python):
        wheels.append(dependency_wheel(name, version, out_dir, find_links, download, python, platform, compresslevel))
    return wheels
