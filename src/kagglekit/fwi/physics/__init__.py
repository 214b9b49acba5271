"""Wave physics: the forward model (deepwave, or the OpenFWI scheme itself), the data misfit,
test-time refinement's optimiser, and the velocity-map families."""

from kagglekit.fwi.physics.families import generate_family
from kagglekit.fwi.physics.misfit import misfit
from kagglekit.fwi.physics.simulate import simulate, simulate_maps, simulate_with_mirror
from kagglekit.fwi.physics.wavelet import ricker_openfwi

__all__ = ["ricker_openfwi", "simulate", "simulate_maps", "simulate_with_mirror", "misfit", "generate_family"]
