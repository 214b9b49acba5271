"""`fwi augment`: more training data than the disk was given. New maps come from fwi/maps.py
(blends, affine, mirrors, generators), are simulated by physics.simulate_maps and written as a
generated converted folder by fwi/data/generated.py, shard by shard over ranks or workers."""
