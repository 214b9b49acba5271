"""`kagglekit runs`: the experiment table competitors keep by hand, read from the run folders.

One row per config folder of a runs folder (or per fold folder with `per_fold`): the folds
done, the best epoch, the CV on the task's primary metric (the Kaggle metric; the folds' mean),
the training time, the overrides against the config file it came from (`<configs>/**/<name>.yaml`,
else the task's defaults) and the latest leaderboard score `kaggle submit` recorded.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from kagglekit.engine.runs import RunFolder
from kagglekit.errors import UserError, one_line
from kagglekit.log import logger
from kagglekit.report import markdown_table

IGNORED_KEYS = ("name", "out_dir")  # where a run lives, not how it trained


@dataclass
class Row:
    config: str
    folds: str  # done folds, e.g. "0,1"; unfinished ones with their epochs: "2 (3/10)"
    best_epoch: str  # per fold, 1-based
    metric: str  # the task's primary metric
    cv: float | None  # mean over folds of the best epoch's primary metric
    train_min: float  # training minutes over its folds
    overrides: str  # "key=value ..." against `base`
    base: str  # the config file compared against, or "task defaults"
    lb: float | None  # the latest leaderboard score recorded
    lb_time: str
    lb_message: str


@dataclass
class _Fold:
    folder: RunFolder
    cfg: dict  # the resolved config.yaml as plain data
    done: bool
    epochs: str  # "3/10"
    best_epoch: int | None
    metric: str
    score: float | None
    seconds: float


def _read_fold(folder: RunFolder) -> _Fold:
    from kagglekit.engine.checkpoint import load_checkpoint

    cfg = folder.config()
    records = folder.read_metrics()
    done = bool(records) and (records[-1]["epoch"] >= cfg.train.epochs or bool(records[-1].get("budget_spent")))
    best_epoch, metric, score = None, "-", None
    if folder.best.is_file():
        best = load_checkpoint(folder.best, required=("epoch", "metrics"), mmap=True)  # tensors stay on disk
        metric = best.get("primary_metric") or _primary_metric(folder, cfg)
        best_epoch, score = best["epoch"] + 1, best["metrics"].get(metric)
    seconds = float(records[-1].get("elapsed_s", 0.0)) if records else 0.0
    epochs = f"{records[-1]['epoch'] if records else 0}/{cfg.train.epochs}"
    return _Fold(folder, cfg.model_dump(mode="json"), done, epochs, best_epoch, metric, score, seconds)


def _primary_metric(folder: RunFolder, cfg) -> str:
    """For a best.pt written before it recorded its metric's name: the task's own attribute."""
    from kagglekit.engine.task import build_task

    try:
        return build_task(cfg).primary_metric
    except UserError as err:  # e.g. its data moved: the row stays, without a CV
        logger.warning(f"runs: {folder.best} does not name its metric and its task cannot be built ({one_line(err)})")
        return "-"


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):  # an empty section adds no key: {} vs {width: 8} is width=<unset>
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _format(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _base_config(cfg: dict, configs_dir: Path) -> tuple[dict, str]:
    """The config file the run came from (same name and task under `configs_dir`), else the task's defaults."""
    from kagglekit.config import ConfigError, load_config

    candidates = sorted(configs_dir.rglob(f"{cfg['name']}.yaml")) if configs_dir.is_dir() else []
    for path in candidates:
        try:
            base = load_config(path)
        except ConfigError as err:  # a file that no longer loads is reported as the base, not hidden
            logger.warning(f"runs: {path} does not load, comparing {cfg['name']} with the task defaults ({one_line(err)})")
            continue
        if base.task == cfg["task"]:
            return base.model_dump(mode="json"), str(path)
    return _task_defaults(cfg), "task defaults"


def _task_defaults(cfg: dict) -> dict:
    """The task's config with every default in place; keys without a default (required ones, e.g.
    the model's name) take the run's values, so they never show as overrides."""
    from pydantic import ValidationError

    from kagglekit.config import _merge_defaults, config_class
    from kagglekit.engine.task import get_task

    schema, defaults = config_class(cfg["task"]), get_task(cfg["task"]).defaults
    minimal = {"name": cfg["name"], "task": cfg["task"], "model": {"name": cfg["model"]["name"]}}
    try:
        schema.model_validate(_merge_defaults(defaults, minimal))
    except ValidationError as err:
        for missing in (e["loc"] for e in err.errors() if e["type"] == "missing"):
            source, target = cfg, minimal
            for key in missing[:-1]:
                source, target = source[key], target.setdefault(key, {})
            target[missing[-1]] = source[missing[-1]]
    return schema.model_validate(_merge_defaults(defaults, minimal)).model_dump(mode="json")


def overrides_against(cfg: dict, base: dict) -> list[str]:
    """`key=value` for every dotted key whose value in `cfg` differs from `base`."""
    run, ref = _flatten(cfg), _flatten(base)
    keys = [k for k in run if k not in IGNORED_KEYS] + [k for k in ref if k not in run and k not in IGNORED_KEYS]
    return [f"{k}={_format(run[k]) if k in run else '<unset>'}" for k in keys if run.get(k) != ref.get(k)]


def _fold_dirs(config_dir: Path) -> list[RunFolder]:
    folders = [RunFolder(p) for p in sorted(config_dir.iterdir()) if p.is_dir()]
    return [f for f in folders if f.has_fold_name and f.config_path.is_file()]


def _row(name: str, folds: list[_Fold], configs_dir: Path) -> Row:
    base, base_name = _base_config(folds[0].cfg, configs_dir)
    overrides = overrides_against(folds[0].cfg, base)
    if any(f.cfg != folds[0].cfg for f in folds[1:]):
        overrides.append("(folds differ)")
    scored = [f for f in folds if f.score is not None]
    metrics = sorted({f.metric for f in scored}) or ["-"]
    board = sorted((r for f in folds for r in f.folder.read_leaderboard()), key=lambda r: r.get("time", ""))
    latest = next((r for r in reversed(board) if r.get("score") is not None), board[-1] if board else {})

    def fold_label(f: _Fold) -> str:
        label = "full" if f.folder.fold == -1 else str(f.folder.fold)
        return label if f.done else f"{label} ({f.epochs})"

    return Row(
        config=name,
        folds=",".join(map(fold_label, folds)),
        best_epoch=",".join("-" if f.best_epoch is None else str(f.best_epoch) for f in folds),
        metric="/".join(metrics),
        cv=sum(f.score for f in scored) / len(scored) if scored and len(metrics) == 1 else None,
        train_min=sum(f.seconds for f in folds) / 60,
        overrides=" ".join(overrides),
        base=base_name,
        lb=latest.get("score"),
        lb_time=latest.get("time", ""),
        lb_message=latest.get("message", ""),
    )


def experiment_rows(runs_dir: str | Path = "runs", configs_dir: str | Path = "configs", per_fold: bool = False) -> list[Row]:
    """One row per config folder of `runs_dir` (per fold folder with `per_fold`), sorted by name."""
    runs_dir, configs_dir = Path(runs_dir), Path(configs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir}: runs folder not found (train a config first: kagglekit train CONFIG)")
    rows = []
    for config_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        folds = [_read_fold(f) for f in _fold_dirs(config_dir)]
        if per_fold:
            rows += [_row(f"{config_dir.name}/{f.folder.fold_name}", [f], configs_dir) for f in folds]
        elif folds:
            rows.append(_row(config_dir.name, folds, configs_dir))
    if not rows:
        raise UserError(f"{runs_dir}: no run folders (<config>/fold<k>/config.yaml) inside")
    return rows


COLUMNS = ["config", "folds", "best epoch", "metric", "CV", "train min", "overrides", "LB"]


def to_markdown(rows: list[Row]) -> str:
    table = [
        (r.config, r.folds, r.best_epoch, r.metric, "-" if r.cv is None else r.cv, r.train_min, r.overrides or "-", _lb(r))
        for r in rows
    ]
    return markdown_table(COLUMNS, table, digits=[None, None, None, None, 4, 1, None, None])


def _lb(row: Row) -> str:
    if row.lb is not None:
        return f"{row.lb:g}"
    return "pending" if row.lb_time else "-"


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(asdict(rows[0])), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return out.getvalue()
