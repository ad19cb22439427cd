"""`train`: train a method that has a trainer (e4e, pSp, ReStyle, HyperStyle, plug-ins that declare one)
on a folder of images (multi-GPU under torchrun).

Every option of the method's trainer is a flag (`train --method M --help` lists them); for the
built-in methods these are the official training options under their own names in dash form, with the
authors' recipe for the method and domain as defaults. The effective batch size is --batch-size times the
number of processes torchrun starts.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from e4e_bench.arguments import chosen_method
from e4e_bench.domains import DOMAINS
from e4e_bench.errors import E4EBenchError
from e4e_bench.io import check_output_folder

EXAMPLES = """examples:
  python -m e4e_bench train --method e4e --domain cars --data stanford_cars/train --out runs/e4e_cars
  python -m e4e_bench train --method e4e --domain cars --data stanford_cars/train --out runs/e4e_cars --resume
  torchrun --nproc_per_node 4 -m e4e_bench train --method psp --domain faces --data ffhq --out runs/psp --batch-size 2
  python -m e4e_bench train --method e4e --encoder-type WEncoder --domain faces --data ffhq --out runs/w_encoder
  python -m e4e_bench train --method hyperstyle --domain faces --data ffhq --out runs/hyperstyle --w-encoder hyperstyle-w-encoder-faces"""
# Derived from --method, --domain, --resume and the generator, or fixed by RGB encoding; not settable.
DERIVED = {"method", "domain", "dataset_type", "stylegan_size", "output_size", "input_nc", "label_nc",
           "learn_in_w"}


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W (e.g. 192,256), got {text!r}") from None
    return height, width


def flag_arguments(option, options_class) -> dict:
    """argparse keyword arguments for one training-options field, from its annotation."""
    kind = str(option.type)
    describe = getattr(options_class, "describe_default", lambda name, value: f"default {value}")
    default = describe(option.name, option.default)
    help_text = f"{option.metadata['help']} ({default})" if default else option.metadata["help"]
    kwargs = {"dest": option.name, "default": argparse.SUPPRESS, "help": help_text}
    if kind == "bool":
        return kwargs | {"action": argparse.BooleanOptionalAction}
    if kind.startswith("tuple[int, int]"):
        return kwargs | {"type": parse_size, "metavar": "H,W"}
    if kind.startswith("tuple[int, ...]"):
        return kwargs | {"type": int, "nargs": "+", "metavar": "N"}
    for name, cast in (("int", int), ("float", float), ("str", str)):
        if kind.startswith(name):
            return kwargs | {"type": cast}
    raise TypeError(f"no command-line form for option {option.name} of type {kind}")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train an encoder (e4e, pSp, ReStyle, HyperStyle, or a plug-in's)", description=__doc__,
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help="a registered method that has a trainer (e4e, psp, ...)")
    parser.add_argument("--domain", required=True, choices=sorted(DOMAINS),
                        help="fixes the generator, crop, input size, similarity network and recipe")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue exactly from the newest OUT/checkpoints/iteration_N.pt (or CHECKPOINT)")
    parser.set_defaults(func=main)


def trainer_entry(name: str | None):
    """The registry entry of a method that can be trained; an error naming those that can otherwise."""
    from e4e_bench.methods import METHODS

    trainable = [method for method, entry in METHODS.items() if entry.trainer is not None]
    if name not in trainable:
        raise E4EBenchError(f"{name!r} cannot be trained here; methods with a trainer: {', '.join(trainable)}")
    return METHODS[name]


def train_options(name: str | None):
    """The frozen options dataclass of the method's trainer."""
    from e4e_bench.methods import resolve

    return resolve(trainer_entry(name).train_options)


def add_deferred_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """One flag per training option of the chosen method's trainer (none until --method names one)."""
    name = chosen_method(argv)
    if name is None:
        return
    options_class = train_options(name)
    for option in fields(options_class):
        if option.name in DERIVED:
            continue
        flags = [option.metadata["flag"]] if option.metadata.get("flag") else []
        flags.append("--" + option.name.replace("_", "-"))
        parser.add_argument(*dict.fromkeys(flags), **flag_arguments(option, options_class))


def main(args: argparse.Namespace) -> int:
    from e4e_bench.methods import resolve

    overrides = {f.name: getattr(args, f.name) for f in fields(train_options(args.method)) if hasattr(args, f.name)}
    if "exp_dir" not in overrides:
        raise E4EBenchError("--out DIR is required: the folder for checkpoints, logs and image grids")
    check_output_folder(overrides["exp_dir"])
    if "data" not in overrides and args.resume is None:
        raise E4EBenchError("--data DIR is required: a folder of training images")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    summary = resolve(trainer_entry(args.method).trainer)(args.method, args.domain, overrides, args.resume)
    if summary is not None:
        print(json.dumps(summary))
    return 0
