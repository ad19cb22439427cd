"""Throughput: synchronised timing, the `bench` sweep and the GPUs' peak FLOP/s."""
