"""Wave physics: the forward model (deepwave, or the OpenFWI scheme itself), the data misfit,
test-time refinement's optimiser, and the velocity-map families."""

from kagglekit.fwi.physics.families import generate_family
from kagglekit.fwi.physics.misfit import misfit
from kagglekit.fwi.physics.simulate import ricker_openfwi, simulate

__all__ = ["ricker_openfwi", "simulate", "misfit", "generate_family"]
