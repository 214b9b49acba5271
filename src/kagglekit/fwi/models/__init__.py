"""Velocity-map models: (B, 5, 1000, 70) seismic -> (B, 70, 70) m/s in [1500, 4500].

`MODELS` is the waveform-inversion model registry; its modules are imported on the first lookup.
Every model is a `base.VelocityModel` (shape check, input transform, output bound, backbone hook)
and writes only its body.
"""

from kagglekit.registry import Registry

MODELS = Registry("fwi model", modules=[f"kagglekit.fwi.models.{m}" for m in ("inversionnet", "unet", "hgnet", "fullres")])
