"""Ranger: RAdam with gradient centralisation, wrapped in Lookahead (the e4e/pSp optimiser).

Hyper-parameters are those of lessw2020's Ranger 20.4.11 as used by the official coaches
(encoders.md §4.6): alpha 0.5, k 6, N_sma threshold 5, betas (0.95, 0.999), eps 1e-5,
gradient centralisation on every gradient with more than one dimension.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer


def radam_step_size(step: int, beta1: float, beta2: float, n_sma_threshold: float) -> tuple[float, bool]:
    """RAdam's bias-corrected step size at `step` (1-based), and whether the variance is rectified."""
    beta2_t = beta2**step
    n_sma_max = 2 / (1 - beta2) - 1
    n_sma = n_sma_max - 2 * step * beta2_t / (1 - beta2_t)
    bias1 = 1 - beta1**step
    if n_sma <= n_sma_threshold:
        return 1.0 / bias1, False
    rectifier = (1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2)
    return math.sqrt(rectifier) / bias1, True


class Ranger(Optimizer):
    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        alpha: float = 0.5,  # Lookahead: fraction of the way the slow weights move towards the fast ones
        k: int = 6,  # Lookahead: fast steps between two syncs
        n_sma_threshold: float = 5.0,  # RAdam: below this many SMA steps, no adaptive denominator
        betas: tuple[float, float] = (0.95, 0.999),
        eps: float = 1e-5,
        weight_decay: float = 0.0,
        use_gc: bool = True,  # gradient centralisation
        gc_conv_only: bool = False,  # centralise only conv weights (dim > 3) instead of every dim > 1
    ):
        if not 0.0 <= alpha <= 1.0 or k < 1 or lr <= 0 or eps <= 0:
            raise ValueError(f"invalid Ranger settings: lr={lr}, alpha={alpha}, k={k}, eps={eps}")
        defaults = dict(lr=lr, alpha=alpha, k=k, n_sma_threshold=n_sma_threshold, betas=betas, eps=eps,
                        weight_decay=weight_decay, use_gc=use_gc, gc_min_dim=3 if gc_conv_only else 1)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                if group["use_gc"] and grad.dim() > group["gc_min_dim"]:
                    grad = grad - grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["slow_buffer"] = p.detach().float().clone()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                state["step"] += 1
                step_size, rectified = radam_step_size(state["step"], beta1, beta2, group["n_sma_threshold"])

                weights = p.float()
                if group["weight_decay"]:
                    weights.add_(weights, alpha=-group["weight_decay"] * lr)
                if rectified:
                    weights.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size * lr)
                else:
                    weights.add_(exp_avg, alpha=-step_size * lr)
                if state["step"] % group["k"] == 0:
                    slow = state["slow_buffer"]
                    slow.add_(weights - slow, alpha=group["alpha"])
                    weights.copy_(slow)
                p.copy_(weights)
        return loss
