"""The `l1` metric: per-image mean absolute pixel difference; importing this module registers it."""

from e4e_bench.metrics.registry import MetricContext, register_metric


@register_metric("l1", kind="paired", title="L1", in_run=True,
                 protocol="L1: per-pixel mean absolute difference of [-1,1] RGB images, per image")
def build_l1(context: MetricContext):
    return lambda real, fake: (real - fake).abs().flatten(1).mean(dim=1)
