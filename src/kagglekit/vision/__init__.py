"""Image classification on the shared engine.

`MODELS` is the vision model registry; `kagglekit.vision.models` fills it on the first lookup.
"""

from kagglekit.registry import Registry

MODELS = Registry("vision model", modules=["kagglekit.vision.models"])
