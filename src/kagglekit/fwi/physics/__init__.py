"""Wave physics: the OpenFWI-exact forward model (deepwave) and velocity-map families."""

from kagglekit.fwi.physics.families import generate_family
from kagglekit.fwi.physics.simulate import ricker_openfwi, simulate

__all__ = ["ricker_openfwi", "simulate", "generate_family"]
