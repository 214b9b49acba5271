"""`kagglekit kaggle <command>`: argument parsing and one library call per command.

Order of use: stage-code, stage-weights, validate, publish-code, publish-weights, render-kernel,
push, status --wait, output, submit (scripts/kaggle_submit.sh runs them all).
"""

from __future__ import annotations

import argparse

from kagglekit.cli import command
from kagglekit.kaggle.stage import CODE_KIND, CODE_SLUG, CODE_TITLE, DEFAULT_OWNER, WEIGHTS_KIND
from kagglekit.kaggle.wheels import REPACK_LEVEL


def _stage_code(args) -> None:
    from kagglekit.kaggle.stage import stage_code

    out, manifest = stage_code(
        args.out,
        owner=args.owner,
        slug=args.slug,
        title=args.title,
        find_links=tuple(args.find_links or ()),
        download=not args.no_download,
        include=tuple(args.include or ()),
        license_name=args.license,
        compress_level=args.compress_level,
    )
    for wheel in manifest["wheels"]:
        print(f"{wheel['file']}: {wheel['source']} ({manifest['files'][wheel['file']]['bytes'] / 1e6:.1f} MB)")
    print(f"staged dataset {manifest['dataset']} in {out} (manifest.json: sha256 of every file)")


def _stage_weights(args) -> None:
    from kagglekit.kaggle.stage import stage_weights

    out, manifest = stage_weights(
        args.runs,
        args.out,
        ensemble=args.ensemble,
        owner=args.owner,
        slug=args.slug,
        title=args.title,
        model=args.model,
        variation=args.variation,
        license_name=args.license,
    )
    for run in manifest["runs"]:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in run["metrics"].items() if isinstance(v, int | float))
        print(f"{run['weights']} + {run['config_file']}: {run['config']} {run['fold']}, best epoch {run['best_epoch']}: {shown}")
    print(
        f"staged dataset {manifest['dataset']} and model {manifest['model']} in {out}"
        + (" with ensemble.json" if manifest["ensemble"] else "")
    )


def _render(args) -> None:
    from kagglekit.kaggle.kernels import render_kernel

    options = {
        "slug": args.slug,
        "title": args.title,
        "code": args.code,
        "machine_shape": args.machine_shape,
        "weights": args.weights,
        "competition": args.competition,
        "batch_size": args.batch_size,
        "refine_minutes": args.refine_minutes,
        "data": args.data,
        "config": args.config,
        "fold": args.fold,
        "epochs_per_session": args.epochs_per_session,
        "resume_from": args.resume_from,
        "train_csv": args.train_csv,
        "train_images": args.train_images,
        "test_images": args.test_images,
    }
    out = render_kernel(args.kind, args.out, owner=args.owner, **options)
    print(f"wrote {out / 'kernel-metadata.json'} and its script (push with: kagglekit kaggle push {out})")


def _validate(args) -> None:
    from kagglekit.kaggle.validate import validate_folder

    for folder in args.folders:
        print(f"{folder}: valid ({', '.join(validate_folder(folder))})")


def _push(args) -> None:
    from kagglekit.kaggle import api
    from kagglekit.kaggle.validate import validate_folder

    validate_folder(args.folder)
    kernel, version, url = api.push(args.folder, args.timeout)
    print(f"pushed {kernel} version {version}: {url}")


def _status(args) -> None:
    from kagglekit.kaggle import api

    if args.wait:
        print(f"{args.kernel}: {api.wait_kernel(args.kernel, poll_s=args.poll, timeout_s=args.timeout_minutes * 60)}")
        return
    status, message = api.kernel_status(args.kernel)
    print(f"{args.kernel}: {status}" + (f" ({message})" if message else ""))


def _output(args) -> None:
    from kagglekit.kaggle import api

    for path in api.output(args.kernel, args.out):
        print(path)


def _submit(args) -> None:
    from kagglekit.kaggle import api

    print(api.submit(args.competition, args.message, args.csv, args.kernel, args.version, args.output_file))


def _publish(args, kind: str) -> None:
    from kagglekit.kaggle import KaggleError, api
    from kagglekit.kaggle.stage import read_manifest
    from kagglekit.kaggle.validate import validate_folder

    validate_folder(args.folder)
    found = read_manifest(args.folder)["kind"]
    if found != kind:
        raise KaggleError(
            f"{args.folder}: holds {found}, not {kind} (stage it with `kagglekit kaggle stage-{kind.split('-')[1]}`)"
        )
    wait = {"wait": not args.no_wait, "timeout_s": args.timeout_minutes * 60}
    if getattr(args, "as_", "dataset") == "model":
        print(f"model instance version: {api.publish_model(args.folder, args.notes, **wait)}")
    else:
        print(f"dataset: {api.publish_dataset(args.folder, args.notes, **wait)}")


def _publish_code(args) -> None:
    _publish(args, CODE_KIND)


def _publish_weights(args) -> None:
    _publish(args, WEIGHTS_KIND)


def _whoami(args) -> None:
    from kagglekit.kaggle import api

    print(api.username())


def _owner(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner", default=DEFAULT_OWNER, help="Kaggle user name owning the dataset, model or kernel")


def add_commands(commands: argparse._SubParsersAction) -> None:
    c = command(commands, "stage-code", "kagglekit's wheel + the wheels Kaggle's image lacks, as a dataset folder")
    c.add_argument("out", help="folder to write (replaced when it holds an earlier code staging)")
    _owner(c)
    c.add_argument("--slug", default=CODE_SLUG, help="dataset slug (6-50 characters)")
    c.add_argument("--title", default=CODE_TITLE, help="dataset title (6-50 characters)")
    c.add_argument(
        "--find-links",
        action="append",
        default=None,
        metavar="DIR",
        help="take dependency wheels from this folder first (repeatable)",
    )
    c.add_argument("--no-download", action="store_true", help="never download a wheel from PyPI (offline)")
    c.add_argument(
        "--include", action="append", default=None, metavar="NAME", help="also stage this installed distribution (repeatable)"
    )
    c.add_argument("--license", default="other", help="dataset license name (the wheels keep their own)")
    c.add_argument(
        "--compress-level",
        type=int,
        choices=range(10),
        default=REPACK_LEVEL,
        metavar="0-9",
        help="deflate level of wheels repacked from installed copies (0: stored, larger upload, faster)",
    )
    c.set_defaults(func=_stage_code)

    w = command(commands, "stage-weights", "best.pt + config.yaml of runs as a dataset and Kaggle Model instance folder")
    w.add_argument("runs", nargs="+", help="run folders (runs/<config>/fold0) or config folders (all their folds)")
    w.add_argument("--out", required=True, help="folder to write (replaced when it holds an earlier weights staging)")
    w.add_argument("--ensemble", default=None, help="ensemble.json of `fwi ensemble` to blend the configs with")
    _owner(w)
    w.add_argument("--slug", default=None, help="dataset slug (default: kagglekit-<task>-weights)")
    w.add_argument("--title", default=None, help="dataset title (default: kagglekit <task> weights)")
    w.add_argument("--model", default=None, help="Kaggle Model slug (default: kagglekit-<task>)")
    w.add_argument("--variation", default="default", help="model instance (variation) slug")
    w.add_argument("--license", default="CC0-1.0", help="dataset license name")
    w.set_defaults(func=_stage_weights)

    r = command(commands, "render-kernel", "write a kernel folder (kernel-metadata.json + script) from its template")
    r.add_argument("kind", choices=["fwi-submission", "fwi-training", "vision-submission"], help="which kernel")
    r.add_argument("--out", default=None, help="folder to write (default: kernels/<slug>)")
    _owner(r)
    r.add_argument("--slug", default=None, help="kernel slug (default: kagglekit-<kind>); must equal the slugified title")
    r.add_argument("--title", default=None, help="kernel title (default: from the slug)")
    r.add_argument("--code", default=None, help="code dataset owner/slug (default: OWNER/kagglekit-code)")
    r.add_argument("--machine-shape", default=None, help="accelerator (default: NvidiaTeslaT4, the T4 x2)")
    r.add_argument("--weights", default=None, help="weights dataset owner/slug or model owner/model/pyTorch/variation/N")
    r.add_argument("--competition", default=None, help="competition slug (submission kernels)")
    r.add_argument("--batch-size", type=int, default=None, help="test samples per forward pass (submission kernels)")
    r.add_argument("--refine-minutes", type=float, default=None, help="fwi-submission: physics refinement budget, 0 = off")
    r.add_argument(
        "--data", default=None, help="fwi-training: dataset of `fwi convert` output (default: OWNER/kagglekit-fwi-converted)"
    )
    r.add_argument("--config", default=None, help="fwi-training: config YAML to embed (default: configs/fwi/hgnet_b2.yaml)")
    r.add_argument("--fold", type=int, default=None, help="fwi-training: fold to train (default: 0)")
    r.add_argument(
        "--epochs-per-session", type=int, default=None, help="fwi-training: epochs per Kaggle session, 0 = all (default: 10)"
    )
    r.add_argument(
        "--resume-from", default=None, help="fwi-training: the kernel (owner/slug) whose output holds the run to continue"
    )
    r.add_argument("--train-csv", default=None, help="vision-submission: id,label CSV of the training images")
    r.add_argument("--train-images", default=None, help="vision-submission: folder of the training images")
    r.add_argument("--test-images", default=None, help="vision-submission: folder of the test images")
    r.set_defaults(func=_render)

    v = command(commands, "validate", "check kernel, dataset and model metadata like the kaggle CLI, and stricter")
    v.add_argument("folders", nargs="+", help="kernel or staged folders")
    v.set_defaults(func=_validate)

    p = command(commands, "push", "validate a kernel folder and push it (prints the version to submit)")
    p.add_argument("folder", help="kernel folder, e.g. kernels/kagglekit-fwi-submission")
    p.add_argument("--timeout", type=int, default=None, help="maximum run time of the kernel in seconds")
    p.set_defaults(func=_push)

    s = command(commands, "status", "status of a kernel's latest run")
    s.add_argument("kernel", help="owner/slug")
    s.add_argument("--wait", action="store_true", help="poll until the run ends; fail unless it completes")
    s.add_argument("--poll", type=float, default=30.0, help="seconds between polls")
    s.add_argument("--timeout-minutes", type=float, default=720.0, help="give up waiting after this long")
    s.set_defaults(func=_status)

    o = command(commands, "output", "download a kernel's output files and log")
    o.add_argument("kernel", help="owner/slug")
    o.add_argument("--out", required=True, help="folder for the files")
    o.set_defaults(func=_output)

    b = command(commands, "submit", "submit a CSV (CSV competition) or a kernel version (code competition)")
    b.add_argument("competition", help="competition slug, e.g. waveform-inversion")
    b.add_argument("--message", required=True, help="submission description")
    b.add_argument("--csv", default=None, help="CSV competition: the file to upload")
    b.add_argument("--kernel", default=None, help="code competition: owner/slug of the submission kernel")
    b.add_argument("--version", type=int, default=None, help="code competition: the kernel version `push` printed")
    b.add_argument("--output-file", default="submission.csv", help="code competition: the file the kernel wrote")
    b.set_defaults(func=_submit)

    for name, func, what in (
        ("publish-code", _publish_code, "a stage-code folder"),
        ("publish-weights", _publish_weights, "a stage-weights folder"),
    ):
        u = command(commands, name, f"upload {what}: create or add a version, wait until ready")
        u.add_argument("folder", help=f"{what}")
        u.add_argument("--notes", default="", help="version notes")
        u.add_argument("--no-wait", action="store_true", help="return once uploaded, before Kaggle has processed it")
        u.add_argument("--timeout-minutes", type=float, default=60.0, help="give up waiting after this long")
        if name == "publish-weights":
            u.add_argument(
                "--as",
                dest="as_",
                choices=["dataset", "model"],
                default="dataset",
                help="upload as a dataset or a Kaggle Model instance",
            )
        u.set_defaults(func=func)

    i = command(commands, "whoami", "the Kaggle user name of the configured credentials")
    i.set_defaults(func=_whoami)
