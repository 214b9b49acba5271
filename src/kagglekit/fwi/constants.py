"""Facts of the competition data (OpenFWI acquisition geometry and array shapes)."""

import numpy as np

N_SOURCES = 5
N_TIME = 1000  # samples at 1 ms
N_RECEIVERS = 70  # one per grid column, 10 m apart
GRID = 70  # velocity maps are GRID x GRID, dx = 10 m
DX = 10.0  # m
DT = 1e-3  # s
SOURCE_COLUMNS = (0, 17, 34, 52, 69)
SOURCE_DEPTH_ROW = 1
RECEIVER_DEPTH_ROW = 1
VMIN, VMAX = 1500.0, 4500.0  # m/s, every family
RICKER_FREQ = 15.0  # Hz
# Sample of the source wavelet's peak in a record (the Ricker of 147 samples peaks at sample 73 of
# the simulation; records drop sample 0). physics.simulate.recorded_peak_sample derives the same.
RECORDED_PEAK_SAMPLE = int(2.2 / RICKER_FREQ / DT / 2) - 1
SEISMIC_SHAPE = (N_SOURCES, N_TIME, N_RECEIVERS)
VELOCITY_SHAPE = (GRID, GRID)
# The columns Kaggle scores (and the submission CSV holds): x_1, x_3, ..., x_69.
SCORED_COLUMNS = np.arange(1, GRID, 2)

FAMILIES = (
    "FlatVel_A",
    "FlatVel_B",
    "CurveVel_A",
    "CurveVel_B",
    "FlatFault_A",
    "FlatFault_B",
    "CurveFault_A",
    "CurveFault_B",
    "Style_A",
    "Style_B",
)
