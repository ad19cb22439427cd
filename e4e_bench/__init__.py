"""e4e-bench: a benchmark suite for StyleGAN inversion."""

__version__ = "0.1.0"
