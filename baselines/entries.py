"""The registry entries of `opt_w`, `opt_wplus` and `pti` (read by `e4e_bench.methods` on first use)."""

from e4e_bench.methods.contract import MethodEntry

TOY_OPTIONS = {"lpips_weight": 0.0, "mse_weight": 1.0, "steps": 200}  # the toy's 24x32 pictures: pixel loss, offline
# PTI on the toy: the toy projector's pivot (so that it equals opt_w's codes), its w_avg_samples, and pixel-loss tuning
TOY_PTI_OPTIONS = TOY_OPTIONS | {"lr": 0.1, "w_avg_samples": 10_000, "tune_lpips_weight": 0.0, "tune_steps": 100}

ENTRIES = (
    MethodEntry(
        name="opt_w",
        factory="baselines.method:build_opt_w",
        options="baselines.method:ProjectionOptions",
        summary="projection into W: one code for every layer, Adam on LPIPS-VGG (+ MSE) and the noise maps",
        domain_options={"toy": TOY_OPTIONS},
    ),
    MethodEntry(
        name="opt_wplus",
        factory="baselines.method:build_opt_wplus",
        options="baselines.method:ProjectionOptions",
        summary="projection into W+: one code per layer, otherwise as opt_w",
        domain_options={"toy": TOY_OPTIONS},
    ),
    MethodEntry(
        name="pti",
        factory="baselines.pti:build_pti",
        options="baselines.pti:PTIOptions",
        summary="pivotal tuning: a W pivot (opt_w, or an encoder's codes), then each image's own generator tuned "
                "around it (MSE + LPIPS-AlexNet)",
        domain_options={"toy": TOY_PTI_OPTIONS},
    ),
)
