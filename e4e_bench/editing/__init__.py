"""Edit directions in W+: InterFaceGAN files, GANSpace PCA components and SeFa factors."""

from e4e_bench.editing.directions import SPEC_HELP, Direction, parse_direction

__all__ = ["SPEC_HELP", "Direction", "parse_direction"]
