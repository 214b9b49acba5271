"""Velocity-map models: (B, 5, 1000, 70) seismic -> (B, 70, 70) m/s in [1500, 4500].

Importing this package registers every model in kagglekit.registry.MODELS.
"""

from kagglekit.fwi.models import fullres, hgnet, inversionnet, unet  # noqa: F401  (registration)
from kagglekit.fwi.models.common import load_pretrained

__all__ = ["load_pretrained"]
