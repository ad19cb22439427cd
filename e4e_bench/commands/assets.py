"""`assets list|fetch NAME|verify`: the pretrained-weights registry."""

from __future__ import annotations

import argparse
import sys

from e4e_bench import assets
from e4e_bench.errors import E4EBenchError


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
    actions.add_parser("list", help="show every asset, whether it is cached, and its file")
    fetch = actions.add_parser("fetch", help="download assets into the cache; every name is tried and reported")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--force", action="store_true", help="download again even when cached")
    verify = actions.add_parser(
        "verify", help="check cached files: verified (published sha256), unverified (only a hash recorded here), "
        "mismatched or missing; exit status 2 on a mismatch")
    verify.add_argument("names", nargs="*", metavar="NAME", help="default: every registered asset (those not cached are listed as missing)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    return {"list": list_assets, "fetch": fetch_assets, "verify": verify_assets}[args.action](args)


def published_hash(asset: assets.Asset) -> str:
    if asset.sha256:
        return "published sha256"
    if asset.sha256_prefix:
        return "published sha256 prefix"
    return "no published sha256"


def list_assets(args: argparse.Namespace) -> int:
    print(f"cache: {assets.cache_home()}")
    for asset in assets.ASSETS.values():
        state = "packaged" if asset.packaged else "cached  " if asset.path.is_file() else "missing "
        print(f"{asset.name:22s} {state} {published_hash(asset):24s} {asset.description}\n{'':22s} {asset.path}")
    return 0


def fetch_assets(args: argparse.Namespace) -> int:
    """Every name is tried; each gets one line, failures on stderr."""
    failed = []
    for name in args.names:
        try:
            fetched = assets.fetch(name, force=args.force)
        except E4EBenchError as err:
            print(f"{name}: failed: {err}", file=sys.stderr)
            failed.append(name)
            continue
        if fetched.check is None:
            print(f"{name}: already cached at {fetched.path} (not downloaded again; `assets verify {name}` checks it)")
            continue
        kept = f"; kept {fetched.member} of the downloaded pack, discarded the rest" if fetched.member else ""
        print(f"{name}: {fetched.path} {fetched.check.status}: {fetched.check.detail}{kept}")
    if failed:
        print(f"error: {len(failed)} of {len(args.names)} assets could not be fetched: {', '.join(failed)}",
              file=sys.stderr)
        return 2
    return 0


def verify_assets(args: argparse.Namespace) -> int:
    """One line per asset; a mismatch does not stop the others but makes the exit status 2."""
    names = args.names or list(assets.ASSETS)
    for name in names:
        assets.get_asset(name)  # a misspelt name fails before any hashing
    found: dict[str, list[str]] = {}
    for name in names:
        check = assets.verify(name)
        found.setdefault(check.status, []).append(name)
        print(f"{name:22s} {check.status:10s} {check.detail}")
    problems = []
    if found.get(assets.MISMATCHED):
        problems.append(f"mismatched: {', '.join(found[assets.MISMATCHED])}; delete these files and fetch them again")
    if args.names and found.get(assets.MISSING):
        problems.append(f"not cached in {assets.cache_home()}: {', '.join(found[assets.MISSING])}")
    if not args.names and len(found.get(assets.MISSING, [])) == len(names):
        problems.append(f"no asset is cached in {assets.cache_home()}; nothing was verified")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2 if problems else 0
