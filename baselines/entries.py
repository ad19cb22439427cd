"""The registry entries of `opt_w` and `opt_wplus` (read by `e4e_bench.methods` on first use)."""

from e4e_bench.methods.contract import MethodEntry

TOY_OPTIONS = {"lpips_weight": 0.0, "mse_weight": 1.0, "steps": 200}  # the toy's 24x32 pictures: pixel loss, offline

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
)
