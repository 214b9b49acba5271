"""kagglekit: a workbench for Kaggle competitions (waveform inversion first, image classification beside it)."""

__version__ = "0.1.0"
