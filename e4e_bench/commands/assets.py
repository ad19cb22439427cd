"""`assets list|fetch NAME|verify`: the pretrained-weights registry."""

from __future__ import annotations

import argparse

from e4e_bench import assets


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "assets",
        help="list, download and verify pretrained weights",
        description=f"Pretrained files are cached in $E4E_BENCH_HOME (default ~/.cache/e4e_bench). "
        f"Known names: {', '.join(assets.ASSETS)}.",
        epilog="examples: python -m e4e_bench assets list; python -m e4e_bench assets fetch stylegan2-car; "
        "python -m e4e_bench assets verify",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="show every asset and whether it is cached")
    fetch = actions.add_parser("fetch", help="download assets into the cache")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--force", action="store_true", help="download again even when cached")
    verify = actions.add_parser("verify", help="check cached files against their sha256")
    verify.add_argument("names", nargs="*", metavar="NAME", help="default: every cached asset")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        print(f"cache: {assets.cache_home()}")
        for asset in assets.ASSETS.values():
            state = "cached " if (assets.cache_home() / asset.filename).is_file() else "missing"
            checksum = "sha256 known" if asset.sha256 else "sha256 recorded on first fetch"
            print(f"{asset.name:22s} {state} {asset.filename:40s} {checksum:30s} {asset.description}")
        return 0
    if args.action == "fetch":
        for name in args.names:
            print(f"{name}: {assets.fetch(name, force=args.force)}")
        return 0
    names = args.names or list(assets.ASSETS)
    for name in names:
        print(f"{name:22s} {assets.verify(name)}")
    return 0
