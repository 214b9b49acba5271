"""Yale/UNC-CH Geophysical Waveform Inversion: data layer, physics, models, submission."""
