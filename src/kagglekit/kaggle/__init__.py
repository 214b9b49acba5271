"""Kaggle: code and weights as uploadable folders, offline kernels, and thin wrappers over the
`kaggle` package (imported lazily in `kagglekit.kaggle.api` only: it authenticates on import).

- `wheels`, `stage`: `kaggle stage-code` / `stage-weights` folders (wheels, weights, manifests);
- `kernels`: the kernel folders of `kernels/`, rendered from one template each;
- `validate`: the `kaggle` CLI's metadata rules plus stricter ones;
- `paths`, `runtime`: what a kernel runs on Kaggle (input resolution, predict/blend/submit, train);
- `api`, `commands`: `kagglekit kaggle push|status|output|submit|publish-*`.
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
