"""Fashion-MNIST on the 2-core CPU: the best config and its 4-bit QAT variant, trained on the
60k train split (minus a 5% holdout that picks the epoch and fits the temperature) and scored on
the official 10,000-image test set.

    .venv/bin/python benchmarks/fashion_mnist.py            # trains what is missing (~10 min each)
    .venv/bin/python benchmarks/fashion_mnist.py --retrain  # trains both again
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from kagglekit.config import load_config  # noqa: E402
from kagglekit.engine.fit import fit, run_dir_for  # noqa: E402
from kagglekit.vision.predict import classification_metrics, load_run, predict_probs  # noqa: E402
from kagglekit.vision.quant import dequantize_into, export_quantized, quantized_layers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=["fmnist_resnet9", "fmnist_resnet9_qat4"])
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.configs:
        cfg = load_config(ROOT / "configs" / "vision" / f"{name}.yaml")
        run = run_dir_for(cfg, -1)
        if args.retrain and run.exists():
            shutil.rmtree(run)
        if not (run / "best.pt").is_file():
            fit(cfg, fold=-1, progress=False)
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        task, model, temperature = load_run(run)
        test = task.test_dataset()
        labels = task.source.labels[test.indices]
        metrics = classification_metrics(predict_probs(task, model, temperature, test), labels)
        size = sum(p.numel() * 4 for p in model.parameters())
        note = "float32 weights"
        if quantized_layers(model):
            export = export_quantized(model)
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(export, Path(tmp) / "int.pt")
                fresh = dequantize_into(task.build_model(), torch.load(Path(tmp) / "int.pt", weights_only=False)).eval()
            qat_accuracy = metrics["accuracy"]
            metrics = classification_metrics(predict_probs(task, fresh, temperature, test), labels)
            size = export["size_bytes"]
            note = f"exported integer model (QAT model before export: {qat_accuracy:.4f}; float32 would be {export['float32_bytes']} B)"
        rows.append((name, records[-1]["elapsed_s"], len(records), metrics, size, note))
    print("| config | train time (s) | epochs | test accuracy | macro-F1 | NLL (calibrated) | model size (bytes) | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, seconds, epochs, m, size, note in rows:
        print(f"| {name} | {seconds:.0f} | {epochs} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['nll']:.4f} | {size} | {note} |")


if __name__ == "__main__":
    main()
