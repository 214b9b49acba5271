"""`kagglekit kaggle <command>`: argument parsing and one library call per command.

Order of use: stage-code, stage-weights, validate, publish-code, publish-weights, render-kernel,
push, status --wait, output, submit (scripts/kaggle_submit.sh runs them all).
"""

from __future__ import annotations

import argparse

from kagglekit.command import command
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
    from kagglekit.kaggle.kernels import COMMON_OPTIONS, kernel_kinds, render_kernel

    names = {*COMMON_OPTIONS, *(name for kind in kernel_kinds().values() for name in kind.options)}
    out = render_kernel(args.kind, args.out, owner=args.owner, **{name: getattr(args, name) for name in names})
    print(f"wrote {out / 'kernel-metadata.json'} and its script (push with: kagglekit kaggle push {out})")


def _add_kind_options(parser: argparse.ArgumentParser) -> list[str]:
    """`--<option>` for every option of every registered kernel kind (the help says which kinds take
    it and their defaults); returns the kind names."""
    from kagglekit.kaggle.kernels import kernel_kinds

    kinds = kernel_kinds()
    seen: dict[str, list] = {}
    for kind in kinds.values():
        for name, option in kind.options.items():
            seen.setdefault(name, []).append((kind.name, option))
    for name, takers in seen.items():
        types = {option.type for _, option in takers}
        if len(types) > 1:
            raise TypeError(f"kernel option {name!r} has several types across kinds {[k for k, _ in takers]}")
        text = "; ".join(
            f"{kind}: {option.help}"
            + ("" if option.default is None else f" (default: {str(option.default).replace('{owner}', 'OWNER')})")
            for kind, option in takers
        )
        parser.add_argument("--" + name.replace("_", "-"), type=types.pop(), default=None, help=text.replace("%", "%%"))
    return list(kinds)


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
    from kagglekit.kaggle.scores import record_score

    reply, ref = api.submit(args.competition, args.message, args.csv, args.kernel, args.kernel_version, args.output_file)
    print(reply)
    if args.no_wait:
        print(f"not waiting for the score: see https://www.kaggle.com/competitions/{args.competition}/submissions")
        return
    score = api.wait_score(args.competition, args.message, ref, poll_s=args.poll, timeout_s=args.timeout_minutes * 60)
    print(f"public score: {score:g}")
    print(record_score(args.csv, args.competition, score, args.message))


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

    r = command(commands, "render-kernel", "write a kernel folder (kernel-metadata.json + script) from its task's kind")
    r.add_argument("kind", help="which kernel: a kind some task declares (see the options below)")
    r.add_argument("--out", default=None, help="folder to write (default: kernels/<slug>)")
    _owner(r)
    r.add_argument("--slug", default=None, help="kernel slug (default: the kind's); must equal the slugified title")
    r.add_argument("--title", default=None, help="kernel title (default: from the slug)")
    r.add_argument("--code", default=None, help="code dataset owner/slug (default: OWNER/kagglekit-code)")
    r.add_argument("--machine-shape", default=None, help="accelerator (default: NvidiaTeslaT4, the T4 x2)")
    kinds = _add_kind_options(r)
    r.description = f"Write a kernel folder from a kind its task declares: {', '.join(kinds)}."
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

    b = command(
        commands,
        "submit",
        "upload a CSV (the default route), or a code competition's kernel version; wait for the score and record it",
        "Upload CSV to COMPETITION (kaggle competitions submit -c COMPETITION -f CSV -m MESSAGE); check it first "
        "(waveform-inversion: kagglekit fwi validate CSV). A code competition takes --kernel and --kernel-version "
        "instead. The public score, once Kaggle has it, goes to the leaderboard.jsonl of the runs listed in "
        "CSV.sources.json (written beside the CSV by the CSV writer).",
    )
    b.add_argument("csv", nargs="?", default=None, help="the CSV to upload (not with --kernel)")
    b.add_argument("-m", "--message", required=True, help="submission description")
    b.add_argument("-c", "--competition", default="waveform-inversion", help="competition slug")
    b.add_argument("--kernel", default=None, help="code competition: owner/slug of the submission kernel")
    b.add_argument("--kernel-version", type=int, default=None, help="code competition: the kernel version `push` printed")
    b.add_argument("--output-file", default="submission.csv", help="code competition: the file the kernel wrote")
    b.add_argument("--no-wait", action="store_true", help="return once uploaded, without waiting for the score")
    b.add_argument("--poll", type=float, default=30.0, help="seconds between polls of the submission's status")
    b.add_argument("--timeout-minutes", type=float, default=60.0, help="give up waiting for the score after this long")
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
