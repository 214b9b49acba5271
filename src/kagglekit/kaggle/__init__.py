"""Kaggle plumbing, general to every task: code and weights as uploadable folders, kernels
rendered from the kinds tasks declare, and thin wrappers over the `kaggle` package (imported
lazily in `kagglekit.kaggle.api` only: it authenticates on import).

- `wheels`, `stage`: `kaggle stage-code` / `stage-weights` folders (wheels, weights, manifests);
- `kernels`: `KernelKind` (what a task declares) rendered into `kernels/<slug>/`;
- `validate`: the `kaggle` CLI's metadata rules plus stricter ones;
- `paths`, `runtime`: what every kernel shares on Kaggle (input resolution, staged runs, a training session);
- `api`, `commands`, `scores`: `kagglekit kaggle push|status|output|submit|publish-*`, and the
  public score recorded in the runs a CSV came from.
A task's kernels themselves live in `kagglekit.<task>.kernels`.
"""

from __future__ import annotations

from pathlib import Path

from kagglekit.errors import UserError


class KaggleError(UserError):
    """A Kaggle folder, metadata file, input or API call is not what kagglekit expects."""


def project_root() -> Path | None:
    """The source checkout kagglekit runs from (pyproject.toml + src/kagglekit), or None when installed."""
    import kagglekit

    root = Path(kagglekit.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "kagglekit").is_dir() else None
