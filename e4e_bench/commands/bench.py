"""`bench`: throughput per method, device, dtype and batch size, synchronised and warmed up."""

from __future__ import annotations

import argparse
from pathlib import Path

from e4e_bench.arguments import (add_option_assignments, assigned_options, distinct_names, non_negative_int,
                                 positive_int, positive_ints)
from e4e_bench.domains import DOMAINS

EXAMPLES = """examples:
  python -m e4e_bench bench --methods e4e,psp,opt_w,opt_wplus --domain cars --batch-sizes 1,8,32 --devices all --random-weights
  python -m e4e_bench bench --methods e4e,generator --domain cars --devices cpu --random-weights --dtype bf16 --out runs/bench_bf16
  python -m e4e_bench bench --methods pti --domain toy --batch-sizes 1,8 --devices cpu --repeats 3 --warmup 1

what one timed call is: an encoder's one `invert` of a batch (images to codes); an iterative method's
(opt_w/opt_wplus) --timed-steps steps of its recipe (latency and images/s extrapolated to the recipe's
steps, default 1000); any other method (pti: pivot and tuning) its whole inversion; generator: decoding a batch of W+ codes with the stored noise."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="throughput per method and device: images/s, latency, peak memory, FLOPs",
        description="Times every method at every batch size on every device: median and p90 latency per batch, "
        "images/s, peak memory, FLOPs per image and the fraction of the device's peak FLOP/s where it is known. "
        "Writes OUT/bench.json (a list of rows), bench.csv and bench.md, and prints the table. A batch that does not "
        "fit in GPU memory is recorded as out of memory and the sweep goes on.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", type=distinct_names,
                        help="comma-separated registered methods, and `generator` for the decoder alone (default: the "
                        "built-in methods, e4e,psp,opt_w,opt_wplus)")
    parser.add_argument("--domain", choices=sorted(DOMAINS), required=True, help="the architecture and input size")
    parser.add_argument("--batch-sizes", type=positive_ints, default=(1, 8, 32), help="comma-separated (default 1,8,32)")
    parser.add_argument("--devices", type=distinct_names, default=("all",),
                        help="all (every GPU, or the CPU when there is none), or a list of cpu, cuda, cuda:K (default all)")
    parser.add_argument("--random-weights", action="store_true",
                        help="the official architectures with random weights: no downloads; throughput does not "
                        "depend on weight values")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="fp32, or bf16/fp16 under torch.autocast (weights stay fp32; default fp32)")
    parser.add_argument("--channels-last", action="store_true", help="inputs and 4-D weights in channels_last layout")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (compiled during the warm-up)")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed calls per row (default 10)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed calls before them (default 2)")
    parser.add_argument("--timed-steps", type=positive_int, default=3,
                        help="steps per timed call of an iterative method such as opt_w (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (default 0)")
    add_option_assignments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder (default runs/bench)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.methods.registry import default_methods
    from e4e_bench.reporting.bench_results import write_bench
    from e4e_bench.throughput.bench import BenchSettings, run_bench

    methods = args.methods or default_methods()
    settings = BenchSettings(
        methods=methods, domain=args.domain, batch_sizes=args.batch_sizes, devices=args.devices,
        random_weights=args.random_weights, dtype=args.dtype, channels_last=args.channels_last,
        compile=args.compile, repeats=args.repeats, warmup=args.warmup, timed_steps=args.timed_steps, seed=args.seed,
        options=assigned_options(args.option, methods),
    )
    paths = write_bench(run_bench(settings), args.out)
    print(paths[-1].read_text(), end="")
    print("wrote " + ", ".join(str(path) for path in paths))
    return 0
