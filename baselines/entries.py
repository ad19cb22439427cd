"""The registry entries of `opt_w`, `opt_wplus` and `pti` (read by `e4e_bench.methods` on first use)."""

from e4e_bench.methods.contract import Dial, MethodEntry

TOY_OPTIONS = {"lpips_weight": 0.0, "mse_weight": 1.0, "steps": 200}  # the toy's 24x32 pictures: pixel loss, offline
# PTI on the toy: the toy projector's pivot (so that it equals opt_w's codes), its w_avg_samples, and pixel-loss tuning
# (the locality regulariser, if turned on, too: AlexNet's pooling leaves nothing of a 24x32 picture)
TOY_PTI_OPTIONS = TOY_OPTIONS | {"lr": 0.1, "w_avg_samples": 10_000, "tune_lpips_weight": 0.0, "tune_steps": 100,
                                 "locality_lpips_weight": 0.0}


def quarter_steps(options) -> tuple[int, ...]:
    """A projection's dial values by default: a quarter, half and all of its steps (one trajectory)."""
    return tuple(sorted({max(1, options.steps // 4), max(1, options.steps // 2), options.steps}))


def all_steps(options) -> int:
    return options.steps


def quarter_tune_steps(options) -> tuple[int, ...]:
    """PTI's dial values by default: the pivot alone (0), then a quarter, half and all of the tuning."""
    return tuple(sorted({0, options.tune_steps // 4, options.tune_steps // 2, options.tune_steps}))


def all_tune_steps(options) -> int:
    return options.tune_steps


PROJECTION_DIAL = Dial("projection steps", quarter_steps, all_steps)

ENTRIES = (
    MethodEntry(
        name="opt_w",
        factory="baselines.method:build_opt_w",
        options="baselines.method:ProjectionOptions",
        summary="projection into W: one code for every layer, Adam on LPIPS-VGG (+ MSE) and the noise maps",
        domain_options={"toy": TOY_OPTIONS},
        dial=PROJECTION_DIAL,
    ),
    MethodEntry(
        name="opt_wplus",
        factory="baselines.method:build_opt_wplus",
        options="baselines.method:ProjectionOptions",
        summary="projection into W+: one code per layer, otherwise as opt_w",
        domain_options={"toy": TOY_OPTIONS},
        dial=PROJECTION_DIAL,
    ),
    MethodEntry(
        name="pti",
        factory="baselines.pti:build_pti",
        options="baselines.pti:PTIOptions",
        summary="pivotal tuning: a W pivot (opt_w, or an encoder's codes), then each image's own generator tuned "
                "around it (MSE + LPIPS-AlexNet)",
        domain_options={"toy": TOY_PTI_OPTIONS},
        dial=Dial("tuning steps", quarter_tune_steps, all_tune_steps, moves_codes=False),
    ),
)
