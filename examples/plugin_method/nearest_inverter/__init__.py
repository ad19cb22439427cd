"""A plug-in for e4e-bench: `nearest_w` inverts an image to the closest of N mapped samples."""
