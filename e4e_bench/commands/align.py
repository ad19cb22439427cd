"""`align`: FFHQ-align the faces of a folder of photos, as the faces domain's encoders expect them."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """examples:
  python -m e4e_bench align --images photos/ --out aligned/
  python -m e4e_bench align --images photos/ --out aligned_1024/ --size 1024
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "align",
        help="FFHQ-align the faces of a folder of photos (needs the faces extra)",
        description="Finds each photo's largest face with dlib (frontal detector, 68 landmarks) and writes "
        "OUT/<stem>.png: the oriented square around eyes and mouth that FFHQ was cut with. Photos without a "
        "face are named and counted, photos with several faces warn. Needs the faces extra: "
        'pip install -e ".[faces]".',
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of photos")
    parser.add_argument("--out", type=Path, required=True, help="folder for the aligned faces")
    parser.add_argument(
        "--size", type=int, choices=(256, 1024), default=256,
        help="256: as e4e/pSp align their inputs (default); 1024: as the FFHQ data set (sampled at 4096)",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from e4e_bench.data import list_images
    from e4e_bench.faces.align import align_photos

    photos = list_images(args.images)
    report = align_photos(photos, args.out, args.size)
    print(f"aligned {len(report.written)} of {len(photos)} photos to {args.out} at {args.size}x{args.size}")
    if report.several_faces:
        listed = ", ".join(f"{path.name} ({count})" for path, count in report.several_faces)
        print(f"several faces, the largest aligned ({len(report.several_faces)}): {listed}")
    if report.no_face:
        print(f"no face found ({len(report.no_face)}): {', '.join(path.name for path in report.no_face)}")
    if report.unreadable:
        print(f"unreadable ({len(report.unreadable)}): {', '.join(path.name for path, _ in report.unreadable)}")
    return 0
