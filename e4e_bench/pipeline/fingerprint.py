"""What produced a resumable artefact, so that a resumed run never mixes results of different set-ups.

A fingerprint is a flat `{field: value}` of strings: the method, the domain, the identity of every
weights file (its sha256, or for files over `HASH_LIMIT` its path, size and modification time) and
every option that changes the result. Kept work is reused only when its stored fingerprint equals
the current one; otherwise the run stops with one line naming the first field that differs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from e4e_bench.assets import sha256_of
from e4e_bench.domains import Domain
from e4e_bench.errors import E4EBenchError
from e4e_bench.methods import InversionMethod

HASH_LIMIT = 256 << 20  # bytes; official checkpoints (~1 GB) are identified by path, size and mtime instead


def file_identity(path: str | os.PathLike | None) -> str:
    if path is None:
        return "none"
    path = Path(path)
    stat = path.stat()
    if stat.st_size <= HASH_LIMIT:
        return f"sha256 {sha256_of(path)}"
    return f"{path.resolve()} ({stat.st_size} bytes, modified {stat.st_mtime_ns} ns)"


def method_fingerprint(method: InversionMethod, domain: Domain) -> dict[str, str]:
    """Everything that decides the codes `method` gives for an image of `domain`."""
    source = method.source
    fingerprint = {
        "method": method.name,
        "domain": domain.name,
        "checkpoint": file_identity(source.checkpoint),
        "generator": file_identity(source.generator),
        "random weights": "none" if source.random_seed is None else f"seed {source.random_seed}",
    }
    for name, value in dataclasses.asdict(method.options).items():
        fingerprint["--" + name.replace("_", "-")] = repr(value)
    return fingerprint


def check_fingerprint(stored: Mapping[str, str], current: Mapping[str, str], artefact: Path, afresh: str) -> None:
    """Raise, naming the first differing field, unless `artefact`'s stored fingerprint is the current one.

    `afresh` tells the user how to start over, e.g. "rerun without --resume".
    """
    differing = [field for field in current if stored.get(field) != current[field]]
    differing += [field for field in stored if field not in current]
    if differing:
        field = differing[0]
        raise E4EBenchError(
            f"{artefact} was made with {field} {stored.get(field, 'unrecorded')}, but this run has "
            f"{field} {current.get(field, 'unrecorded')}; {afresh}"
        )
