"""FWI data layer: readers for the Kaggle / OpenFWI files, memmap conversion, folds, datasets."""

from kagglekit.fwi.data.flip import flip_seismic, flip_velocity
from kagglekit.fwi.data.readers import (
    DataError,
    KaggleTrainSamples,
    OpenFWIFiles,
    TestFolder,
    TrainPair,
    find_train_pairs,
)

__all__ = [
    "DataError",
    "KaggleTrainSamples",
    "OpenFWIFiles",
    "TestFolder",
    "TrainPair",
    "find_train_pairs",
    "flip_seismic",
    "flip_velocity",
]
