"""Quantisation-aware training (BitNetMCU style) and integer export.

Weights: symmetric per-layer scale s = max|w| / (2^(bits-1) - 0.5); levels q in {+-0.5, ...,
+-(2^(bits-1) - 0.5)} (no zero) via floor(w / s) + 0.5, clamped. Quantising q * s again gives q
and s back (idempotent), so an exported model computes exactly what the QAT model did; straight-through estimator w + (q s - w).detach().
Activations entering each quantised layer: RMS-normalised per sample, then 8-bit fake-quantised
(symmetric, per-sample max). The export stores each layer's levels as 4-bit codes packed two per
byte (bits <= 4; one per byte otherwise) plus its float scale; everything else (biases, BN) stays
float32. `dequantize_into` rebuilds a model whose weights are exactly codes * scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def quantize_levels(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Levels (odd halves, e.g. -7.5..7.5) and the scale of a weight tensor."""
    top = 2 ** (bits - 1) - 0.5
    scale = w.detach().abs().max().clamp(min=1e-8) / top
    levels = torch.clamp(torch.floor(w / scale) + 0.5, -top, top)
    return levels, scale


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    levels, scale = quantize_levels(w, bits)
    return w + (levels * scale - w).detach()  # straight-through estimator


def fake_quant_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    dims = tuple(range(1, x.ndim))
    x = x / x.pow(2).mean(dim=dims, keepdim=True).add(1e-6).sqrt()  # RMS-normalise per sample
    top = 2 ** (bits - 1) - 1
    scale = x.detach().abs().amax(dim=dims, keepdim=True).clamp(min=1e-6) / top
    return x + (torch.round(x / scale) * scale - x).detach()


class QuantConv2d(nn.Conv2d):
    bits = 4

    def forward(self, x):
        return self._conv_forward(fake_quant_activation(x), fake_quant_weight(self.weight, self.bits), self.bias)


class QuantLinear(nn.Linear):
    bits = 4

    def forward(self, x):
        return F.linear(fake_quant_activation(x), fake_quant_weight(self.weight, self.bits), self.bias)


def apply_qat(model: nn.Module, bits: int = 4) -> nn.Module:
    """Swap every Conv2d / Linear for its quantised version in place (weights kept)."""
    for name, child in list(model.named_children()):
        if type(child) is nn.Conv2d:
            q = QuantConv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                child.bias is not None,
                child.padding_mode,
            )
        elif type(child) is nn.Linear:
            q = QuantLinear(child.in_features, child.out_features, child.bias is not None)
        else:
            apply_qat(child, bits)
            continue
        q.load_state_dict(child.state_dict())
        q.bits = bits
        setattr(model, name, q)
    return model


def quantized_layers(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def export_quantized(model: nn.Module) -> dict:
    """Integer weights + scales of every quantised layer, other tensors as float32, and sizes."""
    layers, quant_names = {}, set()
    packed_bytes = 0
    for name, layer in quantized_layers(model):
        levels, scale = quantize_levels(layer.weight.detach(), layer.bits)
        codes = (levels + (2 ** (layer.bits - 1) - 0.5)).to(torch.uint8).flatten()  # 0 .. 2^bits - 1
        if layer.bits <= 4:
            if codes.numel() % 2:
                codes = torch.cat([codes, codes.new_zeros(1)])
            codes = codes[0::2] | (codes[1::2] << 4)
        layers[name] = {"codes": codes, "scale": float(scale), "bits": layer.bits, "shape": tuple(layer.weight.shape)}
        quant_names.add(f"{name}.weight")
        packed_bytes += codes.numel() + 4
    rest = {k: v.detach().float() for k, v in model.state_dict().items() if k not in quant_names and v.is_floating_point()}
    rest_bytes = sum(v.numel() * 4 for v in rest.values())
    float_bytes = sum(v.numel() * 4 for k, v in model.state_dict().items() if v.is_floating_point())
    return {
        "layers": layers,
        "float_tensors": rest,
        "size_bytes": packed_bytes + rest_bytes,
        "float32_bytes": float_bytes,
    }


def dequantize_into(model: nn.Module, export: dict) -> nn.Module:
    """Load an export into a QAT model of the same architecture (weights = codes * scale)."""
    state = dict(export["float_tensors"])
    for name, layer in export["layers"].items():
        codes = layer["codes"]
        n = int(torch.tensor(layer["shape"]).prod())
        if layer["bits"] <= 4:
            codes = torch.stack([codes & 0x0F, codes >> 4], dim=1).flatten()[:n]
        levels = codes.float() - (2 ** (layer["bits"] - 1) - 0.5)
        state[f"{name}.weight"] = (levels * layer["scale"]).reshape(layer["shape"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.endswith("num_batches_tracked")]:
        raise ValueError(f"export does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def export_run(run_dir, out) -> str:
    """`vision export`: write the integer export of a QAT run, reload it into a fresh model and
    score it on the test split; returns the report (size and accuracy)."""
    from kagglekit.errors import UserError
    from kagglekit.io import atomic_torch_save
    from kagglekit.vision.metrics import classification_metrics
    from kagglekit.vision.predict import load_vision_run, predict_probs

    run = load_vision_run(run_dir)
    if not quantized_layers(run.model):
        raise UserError(f"{run_dir}: not a QAT run (set model.qat_bits)")
    export = export_quantized(run.model)
    atomic_torch_save(export, out)
    run.model = dequantize_into(run.task.build_model(), torch.load(out, weights_only=True)).eval()
    test = run.task.test_dataset()
    metrics = classification_metrics(predict_probs(run, test), run.task.source.labels[test.indices])
    return (
        f"integer export {out}: {export['size_bytes']} bytes vs {export['float32_bytes']} bytes float32 "
        f"({export['float32_bytes'] / export['size_bytes']:.1f}x smaller)\n"
        f"exported integer model, test accuracy {metrics['accuracy']:.4f}"
    )
