"""The waveform-inversion kernels: what `kagglekit kaggle render-kernel fwi-*` writes and what each
one runs on Kaggle (registered in `kagglekit.fwi.spec`).

- fwi-submission: predict the competition's test set with every staged run (flip TTA), blend the
  configs with the code of `kagglekit fwi ensemble` (the staged ensemble.json, else the mean),
  optionally refine by physics within a time budget that covers choosing what to refine, write
  and validate working/submission.csv. For inference on Kaggle's GPUs; the competition itself takes
  CSV uploads (`kagglekit kaggle submit CSV`).
- fwi-training: train one fold of a config (embedded in the script), `epochs_per_session` epochs
  per Kaggle session, continuing from the kernel's earlier output; torchrun on every GPU.

Inputs are found under either mount layout (`kagglekit.kaggle.paths`). Intermediate arrays live
in a temporary folder outside working/ (whose files become the kernel's output) and are deleted.
Nothing here is imported before a kernel runs but the kinds themselves (no torch, deepwave or kaggle).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from kagglekit.arguments import non_negative_float, non_negative_int, positive_int
from kagglekit.kaggle import KaggleError, project_root
from kagglekit.kaggle.kind import KernelKind, KernelOption
from kagglekit.kaggle.paths import find_input, find_weights, kaggle_root
from kagglekit.kaggle.runtime import loader_workers, log, pick_device, staged_runs, train_session

COMPETITION = "waveform-inversion"
DEFAULT_TRAINING_CONFIG = "configs/fwi/hgnet_b2.yaml"


def fwi_submission(
    weights: str,
    competition: str = COMPETITION,
    root: str | os.PathLike | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    tta: bool = True,
    refine_minutes: float = 0.0,
    refine_iters: int | None = None,
    device: str | None = None,
) -> Path:
    """Staged runs -> working/submission.csv of the waveform-inversion competition (validated).

    `refine_minutes` > 0: `refine_predictions` gets the whole budget, ranking included; this
    function ranks nothing itself."""
    t0 = time.perf_counter()
    root = kaggle_root(root)
    comp = find_input("competition", competition, "sample_submission.csv", root)  # inputs first: fail before heavy imports
    staged = find_weights(weights, root=root)
    from kagglekit.fwi.ensemble import blend_config_predictions
    from kagglekit.fwi.predict import predict_runs
    from kagglekit.fwi.submission import SubmissionError, read_sample_submission, validate_submission, write_csv

    dev = pick_device(device)
    with tempfile.TemporaryDirectory(prefix="kagglekit-") as tmp:
        runs = staged_runs(staged, Path(tmp) / "runs", "fwi")
        log(f"{len(runs)} runs from {staged}, test files from {comp / 'test'}, device {dev}")
        pred_dir = Path(tmp) / "pred"
        predict_runs(
            runs,
            comp / "test",
            pred_dir,
            tta_flip=tta,
            batch_size=batch_size,
            num_workers=loader_workers(num_workers),
            device=dev,
        )
        t_pred = time.perf_counter()
        configs = sorted({run.parent.name for run in runs})
        blend_file = staged / "ensemble.json"
        pred = blend_config_predictions(pred_dir, configs, blend_file if blend_file.is_file() else None)  # in memory
        how = f"blend of {configs} by {'ensemble.json' if blend_file.is_file() else 'mean'}"
        if refine_minutes > 0:
            from kagglekit.fwi.refine import refine_predictions

            iters = {} if refine_iters is None else {"iters": refine_iters}
            pred = refine_predictions(pred, comp / "test", Path(tmp) / "refine", minutes=refine_minutes, device=dev, **iters)
            how += f", refined within {refine_minutes} min"
        sample = read_sample_submission(comp / "sample_submission.csv")
        out = write_csv(pred, sample, root / "working" / "submission.csv")
        n = len(pred)
        del pred
    problems = validate_submission(out, sample)
    if problems:
        raise SubmissionError(f"the written submission {out} is invalid: " + "; ".join(map(str, problems)))
    log(
        f"wrote and validated {out}: {n} test ids, {how}, flip TTA {'on' if tta else 'off'}; "
        f"prediction {t_pred - t0:.0f} s, total {time.perf_counter() - t0:.0f} s"
    )
    return out


def fwi_training(
    data: str,
    config_name: str,
    config_yaml: str,
    fold: int = 0,
    epochs_per_session: int | None = None,
    resume_from: str | None = None,
    root: str | os.PathLike | None = None,
    nproc: int | None = None,
    script: str | os.PathLike | None = None,
) -> Path:
    """Train `fold` of the config `config_yaml` on the converted data of the dataset `data` for one
    Kaggle session (`kagglekit.kaggle.runtime.train_session`)."""
    converted = find_input("dataset", data, "index.csv", kaggle_root(root))  # inputs first: fail before heavy imports
    return train_session(
        config_name,
        config_yaml,
        fold,
        overrides=[f"data.root={converted}"],
        epochs_per_session=epochs_per_session,
        previous=resume_from,
        root=root,
        nproc=nproc,
        script=script,
    )


def _training_arguments(opts: dict[str, Any]) -> dict[str, Any]:
    """Render options -> fwi_training's arguments: the config file becomes its name and text (validated first)."""
    config = opts.pop("config")
    if config is None:
        checkout = project_root()
        if checkout is None:
            raise KaggleError("fwi-training: pass --config (a config YAML); there is no source checkout to take the default from")
        config = checkout / DEFAULT_TRAINING_CONFIG
    from kagglekit.config import load_config

    path = Path(config)
    cfg = load_config(path)  # it must be a valid config before it goes to Kaggle
    if cfg.task != "fwi":
        raise KaggleError(f"{path}: a '{cfg.task}' config; the fwi-training kernel trains waveform-inversion configs")
    return {
        "data": opts["data"],
        "resume_from": opts["resume_from"],
        "fold": opts["fold"],
        "epochs_per_session": opts["epochs_per_session"] or None,
        "config_name": cfg.name,
        "config_yaml": path.read_text(),
    }


SUBMISSION = KernelKind(
    name="fwi-submission",
    title="kagglekit FWI submission",
    summary="the waveform-inversion test set -> /kaggle/working/submission.csv.",
    runtime=fwi_submission,
    code_file="submission.py",
    options={
        "weights": KernelOption(
            "{owner}/kagglekit-fwi-weights",
            "`kagglekit kaggle stage-weights` output: a dataset, or a model owner/model/framework/variation/N",
            source="weights",
        ),
        "competition": KernelOption(COMPETITION, "the competition whose test set is predicted", source="competition"),
        "batch_size": KernelOption(64, "test samples per forward pass", positive_int),
        "refine_minutes": KernelOption(
            0.0, "physics refinement budget in minutes, choosing the maps included (0: off)", non_negative_float
        ),
        "refine_iters": KernelOption(None, "iterations per refined map (None: `fwi refine`'s default)", positive_int),
    },
)

TRAINING = KernelKind(
    name="fwi-training",
    title="kagglekit FWI training",
    summary="train one fold of a waveform-inversion config, resumable across sessions.",
    runtime=fwi_training,
    code_file="training.py",
    options={
        "data": KernelOption(
            "{owner}/kagglekit-fwi-converted", "`kagglekit fwi convert` output, uploaded as a dataset", source="dataset"
        ),
        "resume_from": KernelOption(
            None, "this kernel (owner/slug) whose earlier output holds the run to continue", source="kernel"
        ),
        "fold": KernelOption(0, "the fold to train (-1: all folds, holdout validation)", int),
        "epochs_per_session": KernelOption(
            10, "epochs per Kaggle session (0: all); then push again with --resume-from", non_negative_int
        ),
        "config": KernelOption(None, f"config YAML embedded in the script (default: {DEFAULT_TRAINING_CONFIG})"),
    },
    prepare=_training_arguments,
)

KERNELS = (SUBMISSION, TRAINING)
