import numpy as np
import pytest
import torch

from kagglekit.fwi.synthetic import make_competition


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def synthetic_competition(tmp_path_factory):
    """A tiny simulated competition in the Kaggle layout (4 samples per file, 4 test ids)."""
    return make_competition(tmp_path_factory.mktemp("competition") / "comp", per_file=4, n_test=4, seed=0, progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
