"""The docs stay true to the code: docs/cli.md is the parsers' text, and every file a document links exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "DEVELOPING.md", ROOT / "kernels" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _clidoc(*args: str) -> subprocess.CompletedProcess:
    # a fresh interpreter: tasks other tests register at run time must not reach the reference
    return subprocess.run([sys.executable, "-m", "kagglekit.clidoc", *args], cwd=ROOT, capture_output=True, text=True)


def test_cli_reference_is_current():
    done = _clidoc("--check", "docs/cli.md")
    assert done.returncode == 0, done.stderr


def test_a_stale_cli_reference_fails_with_the_command_that_regenerates_it(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text((ROOT / "docs" / "cli.md").read_text().replace("--batch-size", "--batch", 1))
    done = _clidoc("--check", str(stale))
    assert done.returncode == 1
    assert "python -m kagglekit.clidoc --write docs/cli.md" in done.stderr


def test_every_command_has_a_section():
    from kagglekit.cli import build_parser
    from kagglekit.clidoc import _walk

    text = (ROOT / "docs" / "cli.md").read_text()
    for path, _, _ in _walk(build_parser(), []):
        assert f"\n## kagglekit {' '.join(path)}\n" in text, path


def test_readme_fits_on_a_screen():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


def test_every_relative_link_in_the_docs_exists():
    missing = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"[a-z]+://|mailto:", target) and not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not missing, missing


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (headings outside code fences)."""
    anchors, fenced = set(), False
    for line in doc.read_text().splitlines():
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#"):
            anchors.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return anchors


def test_every_anchor_in_the_docs_exists():
    missing = []
    for doc in DOCS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", doc.read_text()):
            if not re.match(r"[a-z]+://", target) and anchor not in _anchors(doc.parent / target if target else doc):
                missing.append(f"{doc.relative_to(ROOT)} -> {target}#{anchor}")
    assert not missing, missing


def test_no_document_is_cited_outside_the_repo():
    """Code and docs cite reference texts inside the repo (docs/reference/), never ../shared/."""
    pattern = re.compile(r"\.\./shared/|(?<![-\w/])(?:PHYSICS|KAGGLE|FACTS)\.md")
    files = [p for d in ("src", "benchmarks", "scripts", "tests", "docs") for p in (ROOT / d).rglob("*") if p.is_file()]
    files += [ROOT / "README.md", ROOT / "DEVELOPING.md", ROOT / "kernels" / "README.md"]
    stale = []
    for path in files:
        if (
            path.suffix not in {".py", ".sh", ".md", ".yaml", ".toml"}
            or path == Path(__file__).resolve()
            or "reference" in path.parts
        ):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "docs/reference/" not in line:
                stale.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not stale, "\n".join(stale)
