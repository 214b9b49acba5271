"""Fashion-MNIST on the 2-core CPU: the best config and its 4-bit QAT variant, trained on the
60k train split (minus a 5% holdout that picks the epoch and fits the temperature) and scored on
the official 10,000-image test set.

    .venv/bin/python benchmarks/fashion_mnist.py            # trains what is missing (~10 min each)
    .venv/bin/python benchmarks/fashion_mnist.py --retrain  # trains both again
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from kagglekit.config import load_config
from kagglekit.engine.fit import fit
from kagglekit.engine.runs import RunFolder
from kagglekit.vision.metrics import classification_metrics
from kagglekit.vision.predict import load_vision_run, predict_probs
from kagglekit.vision.quant import dequantize_into, export_quantized, quantized_layers

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=["fmnist_resnet9", "fmnist_resnet9_qat4"], help="configs/vision names")
    parser.add_argument("--retrain", action="store_true", help="train again even where a run exists")
    args = parser.parse_args()
    rows = []
    for name in args.configs:
        cfg = load_config(ROOT / "configs" / "vision" / f"{name}.yaml")
        folder = RunFolder.of(cfg, -1)
        run = folder.path
        if args.retrain and run.exists():
            shutil.rmtree(run)
        if not folder.best.is_file():
            fit(cfg, fold=-1, progress=False)
        records = folder.read_metrics()
        loaded = load_vision_run(run)
        test = loaded.task.test_dataset()
        labels = loaded.task.source.labels[test.indices]
        metrics = classification_metrics(predict_probs(loaded, test), labels)  # flip TTA, calibrated
        size = sum(p.numel() * 4 for p in loaded.model.parameters())
        note = "float32 weights"
        if quantized_layers(loaded.model):
            export = export_quantized(loaded.model)
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(export, Path(tmp) / "int.pt")
                loaded.model = dequantize_into(
                    loaded.task.build_model(), torch.load(Path(tmp) / "int.pt", weights_only=True)
                ).eval()
            qat_accuracy = metrics["accuracy"]
            metrics = classification_metrics(predict_probs(loaded, test), labels)
            size = export["size_bytes"]
            note = f"exported integer model (QAT model before export: {qat_accuracy:.4f}; float32 would be {export['float32_bytes']} B)"
        epochs = f"{records[-1]['epochs_done']:.2f} of {cfg.train.epochs}"  # a time budget may end a run early
        rows.append((name, records[-1]["elapsed_s"], epochs, metrics, size, note))
    print("| config | train time (s) | epochs done | test accuracy | macro-F1 | NLL (calibrated) | model size (bytes) | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, seconds, epochs, m, size, note in rows:
        print(
            f"| {name} | {seconds:.0f} | {epochs} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['nll']:.4f} | {size} | {note} |"
        )


if __name__ == "__main__":
    main()
