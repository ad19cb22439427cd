"""Optimization-based inversion: the batched W / W+ projector behind `opt_w` and `opt_wplus`."""
