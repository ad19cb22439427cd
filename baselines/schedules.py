"""The official projectors' schedules (rosinality and NVIDIA `projector.py`), as functions of t = step / steps."""

import math


def learning_rate(t: float, peak: float, rampup: float, rampdown: float) -> float:
    """Linear ramp-up over the first `rampup` fraction, cosine ramp-down over the last `rampdown` fraction."""
    down = min(1.0, (1.0 - t) / rampdown)
    return peak * min(1.0, t / rampup) * (0.5 - 0.5 * math.cos(math.pi * down))


def latent_noise_scale(t: float, w_std: float, strength: float, ramp: float) -> float:
    """Std of the Gaussian noise added to the latent: w_std * strength * max(0, 1 - t/ramp)^2."""
    return w_std * strength * max(0.0, 1.0 - t / ramp) ** 2
