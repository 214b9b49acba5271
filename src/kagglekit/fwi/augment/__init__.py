"""More training data than the disk was given: new maps (blends, affine, mirrors, generators),
simulated and written as converted folders (`fwi augment`, `fwi pseudo-label`)."""
