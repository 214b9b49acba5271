"""`kagglekit vision <command>`: argument parsing and one library call per command."""

from __future__ import annotations

import argparse
from pathlib import Path

from kagglekit.arguments import add_device_argument, positive_int
from kagglekit.command import command


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
            batch_size=args.batch_size,
            device=args.device,
        )
    )


def _export(args) -> None:
    from kagglekit.vision.quant import export_run

    print(export_run(args.run, Path(args.out) / "quantized.pt"))


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = command(commands, "predict", "test-split probabilities of run folders (averaged), metrics, confusion PNG, CSV")
    p.add_argument("runs", nargs="+", help="vision run folders, e.g. runs/fmnist_resnet9/fold0")
    p.add_argument("--out", required=True, help="folder for probs.npy, ids.txt, classes.txt, confusion.png (+ submission.csv)")
    p.add_argument("--no-tta", action="store_true", help="skip the flip TTA pass")
    p.add_argument("--csv", action="store_true", help="also write OUT/submission.csv (id,label)")
    p.add_argument("--sample-submission", default=None, help="take the CSV's column names and row order from this CSV")
    p.add_argument("--class-names", action="store_true", help="write class names instead of indices")
    p.add_argument("--batch-size", type=positive_int, default=256, help="test images per forward pass")
    add_device_argument(p, "predict")
    p.set_defaults(func=_predict)

    e = command(commands, "export", "integer export of a QAT run: size and accuracy of the exported model")
    e.add_argument("run", help="run folder of a config with model.qat_bits")
    e.add_argument("--out", required=True, help="folder for the exported quantized.pt, e.g. runs/fmnist_qat4/fold0")
    e.set_defaults(func=_export)
