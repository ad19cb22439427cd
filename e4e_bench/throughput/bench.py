"""`bench`'s sweep: the throughput of every method on every device at every batch size.

A method is built once per device and timed on random images of its input size (throughput does
not depend on pixel values). What one timed call is:
  * a method: `invert` (images to codes and decoder state; e4e, pSp: one encoder pass);
  * an `IterativeMethod` (opt_w, opt_wplus): `invert_steps` with a few steps (`timed_steps`) of its
    recipe; seconds per step times the recipe's steps gives the full inversion's latency and images/s;
    a method of two kinds of step (pti: projection, then tuning) is timed whole;
  * `generator`: decoding W+ codes with the stored noise, by the domain's own generator architecture
    (its registered file, or that architecture with random weights).
`dtype` bf16/fp16 runs the call under `torch.autocast`; the models' weights stay fp32. `compile`
compiles the models in place after the eager call that counts the FLOPs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from e4e_bench.assets import asset_path
from e4e_bench.checkpoints import load_generator
from e4e_bench.reporting.bench_results import OK, OUT_OF_MEMORY
from e4e_bench.devices import cpu_low_precision_note, cpu_onednn_kernels, device_name, resolve_device
from e4e_bench.domains import Domain, get_domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.networks.generator import Generator
from e4e_bench.methods import METHODS, InversionMethod, IterativeMethod, build_method
from e4e_bench.throughput.peak_flops import TF32_NOTE, peak_rate
from e4e_bench.seeding import seeded_initialisation
from e4e_bench.throughput.timing import PEAK_MEMORY_KINDS, Measurement, measure, timer_name

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
GENERATOR = "generator"  # not a method: the decoder alone
RANDOM_WEIGHTS = "random (seed {seed}): throughput does not depend on weight values"
REGISTERED_WEIGHTS = "the domain's registered files"


@dataclass(frozen=True)
class BenchSettings:
    methods: tuple[str, ...]  # names in METHODS, or GENERATOR
    domain: str
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    devices: tuple[str, ...] = ("all",)  # "all", "cpu", "cuda", "cuda:K"
    random_weights: bool = False
    dtype: str = "fp32"  # a key of DTYPES
    channels_last: bool = False
    compile: bool = False
    repeats: int = 10
    warmup: int = 2
    timed_steps: int = 3  # projection steps per timed call of opt_w / opt_wplus
    seed: int = 0
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # method -> its options given

    def __post_init__(self) -> None:
        unknown = [name for name in self.methods if name not in METHODS and name != GENERATOR]
        if unknown:
            raise E4EBenchError(f"unknown method {', '.join(unknown)} (choose from {', '.join([*METHODS, GENERATOR])})")
        if self.dtype not in DTYPES:
            raise E4EBenchError(f"unknown dtype {self.dtype!r}; use {', '.join(DTYPES)}")


def bench_devices(specs: Sequence[str]) -> list[torch.device]:
    """`all`: every visible GPU, or the CPU when there is none; otherwise the devices named."""
    if "all" in specs:
        count = torch.cuda.device_count()
        return [torch.device("cuda", k) for k in range(count)] if count else [torch.device("cpu")]
    return list(dict.fromkeys(resolve_device(spec) for spec in specs))


@dataclass
class Workload:
    """What one timed call runs, and how its numbers scale to one batch of the method's result."""

    step: Callable[[], object]
    modules: list[nn.Module]
    inputs: torch.Tensor
    recipe_steps: int | None = None  # iterative methods: steps of the full recipe
    timed_steps: int | None = None  # iterative methods: steps per timed call

    @property
    def calls_per_batch(self) -> float:
        """Timed calls that make one full batch (1, or the recipe's steps over the timed ones)."""
        return 1.0 if self.recipe_steps is None else self.recipe_steps / self.timed_steps


def method_workload(method: InversionMethod, batch: int, settings: BenchSettings, device: torch.device) -> Workload:
    rng = torch.Generator().manual_seed(settings.seed)
    images = (torch.rand(batch, 3, *method.input_size, generator=rng) * 2 - 1).to(device)
    modules = [value for value in vars(method).values() if isinstance(value, nn.Module)]
    if not isinstance(method, IterativeMethod):
        return Workload(lambda: method.invert(images).codes, modules, images)
    return Workload(lambda: method.invert_steps(images, settings.timed_steps).codes, modules, images,
                    method.recipe_steps, settings.timed_steps)


def generator_workload(generator: Generator, batch: int, settings: BenchSettings) -> Workload:
    rng = torch.Generator().manual_seed(settings.seed)
    codes = torch.randn(batch, generator.n_latent, generator.style_dim, generator=rng).to(generator.device)

    def decode() -> torch.Tensor:
        with torch.inference_mode():
            return generator(codes, noise="const")

    return Workload(decode, [generator], codes)


def to_channels_last(module: nn.Module) -> None:
    """Every 4-D parameter and buffer in channels_last layout (`Module.to` refuses the generator's 5-D weights)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.ndim == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


def compile_modules(modules: Sequence[nn.Module]) -> None:
    """`torch.compile` each module and its direct children in place: a method may call a child (an
    encoder) rather than the module itself. Compiling a function instead would trace the methods'
    own inference_mode blocks, which torch.compile refuses."""
    for module in modules:
        for part in [module, *module.children()]:
            if not isinstance(part, (nn.ModuleList, nn.ModuleDict)):
                part.compile()


def prepared_step(workload: Workload, settings: BenchSettings, device: torch.device) -> Callable[[], object]:
    """The workload's call under the settings' dtype (autocast) and memory layout, not compiled."""
    step = workload.step
    if settings.channels_last:
        for module in workload.modules:
            to_channels_last(module)
        if workload.inputs.ndim == 4:
            workload.inputs.data = workload.inputs.data.contiguous(memory_format=torch.channels_last)
    if settings.dtype != "fp32":
        plain = step

        def step() -> object:
            with torch.autocast(device.type, dtype=DTYPES[settings.dtype]):
                return plain()

    return step


def peak_source(device: torch.device, name: str, dtype: str) -> tuple[float | None, str]:
    """(peak TFLOP/s or None, where the figure comes from or why there is none)."""
    if device.type != "cuda":
        return None, "CPU: peak FLOP/s unknown (it depends on the model, clock and cores in use)"
    rate = peak_rate(name)
    if rate is None:
        return None, f"{name}: not in the peak table (e4e_bench/throughput/peak_flops.py), peak unknown"
    if dtype not in rate.tflops:
        return None, f"{rate.gpu}: no {dtype} figure ({rate.source})"
    tf32 = f"; {TF32_NOTE}" if dtype == "fp32" else ""
    return rate.tflops[dtype], f"{rate.gpu} {dtype} {rate.tflops[dtype]:g} TFLOP/s dense ({rate.source}){tf32}"


def timing_words(settings: BenchSettings, device: torch.device, workload: Workload) -> str:
    words = (f"median and p90 of {settings.repeats} timed calls ({timer_name(device)}) after one eager call "
             f"under the FLOP counter and {settings.warmup} warm-up calls")
    if workload.recipe_steps is not None:
        words += (f"; a call is {workload.timed_steps} steps of the projection: latency per batch and images/s are "
                  f"seconds per step x the recipe's {workload.recipe_steps} steps (extrapolated, not run)")
    return words


def bench_row(method: str, device: torch.device, batch: int, settings: BenchSettings,
              workload: Workload, measured: Measurement | None) -> dict[str, Any]:
    """One row of bench.json; `measured` None: the batch did not fit in memory."""
    name = device_name(device)
    peak_tflops, source = peak_source(device, name, settings.dtype)
    row: dict[str, Any] = {
        "method": method, "device": str(device), "device_name": name, "dtype": settings.dtype, "batch_size": batch,
        "status": OK if measured else OUT_OF_MEMORY, "images_per_s": None, "latency_ms_median": None,
        "latency_ms_p90": None, "seconds_per_step": None, "peak_memory_bytes": None, "gflop_per_image": None,
        "peak_tflops": peak_tflops, "peak_fraction": None, "recipe_steps": workload.recipe_steps,
        "timed_steps": workload.timed_steps, "channels_last": settings.channels_last, "compiled": settings.compile,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "torch": torch.__version__, "timing": timing_words(settings, device, workload),
        "weights": RANDOM_WEIGHTS.format(seed=settings.seed) if settings.random_weights else REGISTERED_WEIGHTS,
        "max_abs_diff_to_fp32": None, "mean_abs_diff_to_fp32": None,
        "peak_memory_kind": PEAK_MEMORY_KINDS[device.type], "peak_source": source,
        "cpu_bf16": None if device.type == "cuda" else cpu_low_precision_note(settings.dtype),
    }
    if measured is None:
        return row
    scale = workload.calls_per_batch
    median = measured.latency.median * scale
    gflop_per_image = measured.flops * scale / batch / 1e9
    row |= {
        "images_per_s": batch / median,
        "latency_ms_median": 1000 * median,
        "latency_ms_p90": 1000 * measured.latency.p90 * scale,
        "peak_memory_bytes": measured.peak_memory_bytes,
        "gflop_per_image": gflop_per_image,
    }
    if workload.recipe_steps is not None:
        row["seconds_per_step"] = measured.latency.median / workload.timed_steps
    if settings.dtype != "fp32":
        difference = (measured.output.float() - workload.step().float()).abs()
        row |= {"max_abs_diff_to_fp32": difference.max().item(), "mean_abs_diff_to_fp32": difference.mean().item()}
    if peak_tflops is not None:
        row["peak_fraction"] = gflop_per_image * 1e9 * row["images_per_s"] / (peak_tflops * 1e12)
    return row


def measure_batch(method: str, workload: Workload, device: torch.device, batch: int,
                  settings: BenchSettings) -> dict[str, Any]:
    """The row of one batch size; running out of memory is recorded, not raised."""
    try:
        step = prepared_step(workload, settings, device)
        compiles = (lambda: compile_modules(workload.modules)) if settings.compile else None
        measured = measure(step, device, warmup=settings.warmup, repeats=settings.repeats, before_warmup=compiles)
    except torch.cuda.OutOfMemoryError:
        log.warning("%s on %s: batch %d does not fit in memory", method, device, batch)
        measured = None
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row = bench_row(method, device, batch, settings, workload, measured)
    if measured is not None:
        log.info("%s on %s, %s, batch %d: %.3g images/s", method, device, settings.dtype, batch, row["images_per_s"])
    return row


def domain_generator(domain: Domain, device: torch.device, settings: BenchSettings) -> Generator:
    """The domain's own generator: its registered file, or with random weights its architecture."""
    if settings.random_weights:
        with seeded_initialisation(settings.seed):
            return Generator(**domain.generator_kwargs).to(device).eval().requires_grad_(False)
    if domain.generator_asset is None:
        raise E4EBenchError(f"domain {domain.name} has no registered generator to time; pass --random-weights")
    return load_generator(asset_path(domain.generator_asset), device)[0].eval().requires_grad_(False)


def build_for_bench(name: str, domain: Domain, device: torch.device, settings: BenchSettings) -> InversionMethod | Generator:
    if name == GENERATOR:
        return domain_generator(domain, device, settings)
    return build_method(name, domain=domain, device=device, random_weights=settings.random_weights, seed=settings.seed,
                        options=settings.options.get(name))


def run_bench(settings: BenchSettings) -> list[dict[str, Any]]:
    """Every (device, method, batch size) row, in that order."""
    domain = get_domain(settings.domain)
    rows = []
    for device in bench_devices(settings.devices):
        if device.type == "cpu" and settings.dtype != "fp32" and not cpu_onednn_kernels(settings.dtype):
            log.warning("%s", cpu_low_precision_note(settings.dtype))
        for name in settings.methods:
            built = build_for_bench(name, domain, device, settings)
            for batch in settings.batch_sizes:
                workload = (generator_workload(built, batch, settings) if name == GENERATOR
                            else method_workload(built, batch, settings, device))
                rows.append(measure_batch(name, workload, device, batch, settings))
            del built, workload  # free this method's memory before the next one is built
    return rows
