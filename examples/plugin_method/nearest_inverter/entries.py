"""The registry entry of `nearest_w`: light, so that listing methods imports no network."""

from e4e_bench.methods.contract import MethodEntry

NEAREST_W = MethodEntry(
    name="nearest_w",
    factory="nearest_inverter.method:build_nearest_w",
    options="nearest_inverter.method:NearestOptions",
    summary="the W code of the closest of N mapped samples, by pixel distance in the domain's frame",
    domain_options={"toy": {"samples": 2048}},
)
