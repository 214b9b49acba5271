"""`kagglekit vision <command>`: argument parsing and one library call per command."""

from __future__ import annotations

import argparse

from kagglekit.cli import command


def _predict(args) -> None:
    from kagglekit.vision.predict import predict_to_folder

    print(
        predict_to_folder(
            args.runs,
            args.out,
            tta=not args.no_tta,
            csv=args.csv,
            sample_submission=args.sample_submission,
            class_names=args.class_names,
        )
    )


def _export(args) -> None:
    from kagglekit.vision.quant import export_run

    print(export_run(args.run, args.out))


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = command(commands, "predict", "test-split probabilities of run folders (averaged), metrics, confusion PNG, CSV")
    p.add_argument("runs", nargs="+", help="vision run folders, e.g. runs/fmnist_resnet9/fold0")
    p.add_argument("--out", required=True, help="folder for probs.npy, ids.txt, classes.txt, confusion.png")
    p.add_argument("--no-tta", action="store_true", help="skip the flip TTA pass")
    p.add_argument("--csv", default=None, help="also write an id,label submission CSV here")
    p.add_argument("--sample-submission", default=None, help="take column names and row order from this CSV")
    p.add_argument("--class-names", action="store_true", help="write class names instead of indices")
    p.set_defaults(func=_predict)

    e = command(commands, "export", "integer export of a QAT run: size and accuracy of the exported model")
    e.add_argument("run", help="run folder of a config with model.qat_bits")
    e.add_argument("--out", required=True, help="exported file, e.g. runs/fmnist_qat4/fold0/int4.pt")
    e.set_defaults(func=_export)
