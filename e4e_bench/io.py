"""Writing files: outputs checked before the work, and the one atomic write every writer uses.

`check_output_folder` / `check_output_file` run before a command starts its work, so that a
wrong `--out` is one line at once rather than a traceback after the computation. The atomic
write sends the data to a temporary file in the target's folder (so the rename cannot cross file
systems), which is renamed over the target only when writing finished; on any exception, Ctrl-C
included, the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from e4e_bench.errors import E4EBenchError

# What the file system answers when a file cannot be written (full, read-only, forbidden, broken):
# a user's problem, reported in one line. Other OSErrors raised while writing (a download's
# network error inside an `atomic_write` block) are left to their caller.
FILE_SYSTEM_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}


def _check_can_create_in(folder: Path, what: str) -> None:
    """`folder` exists and takes new files, or can be created under a folder that does."""
    existing = next(candidate for candidate in (folder, *folder.parents) if candidate.exists())
    if not existing.is_dir():
        raise E4EBenchError(f"{what}: {existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".e4e_bench-probe-"):
            pass
    except OSError as err:
        raise E4EBenchError(f"{what}: cannot write in {existing} ({err.strerror or err})") from None


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> None:
    """Before any work: `path` is a folder this user can write in, or one that can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise E4EBenchError(f"{flag} {path} is a file; give a folder (it is created when missing)")
    _check_can_create_in(path, f"{flag} {path}")


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """Before any work: `path` names a file (not a folder) that this user can create or replace."""
    path = Path(path)
    if path.is_dir():
        raise E4EBenchError(f"{flag} {path} is a folder; give a file name")
    _check_can_create_in(path.parent, f"{flag} {path}")


def _default_mode() -> int:
    """The permissions `open()` would give a new file: 0o666 less the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing ("wb" or "w"); rename it to `path` on success.

    `stream.name` is the temporary file's path, for writers that need to reopen what they wrote.
    A write the file system refuses (disk full, read-only, no permission) is an E4EBenchError.
    """
    assert mode in ("wb", "w"), mode
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise E4EBenchError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(handle)
    try:
        with open(temporary, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as stream:
            yield stream
        os.chmod(temporary, _default_mode())  # mkstemp creates 0600 files; results are meant to be shared
        os.replace(temporary, path)
    except BaseException as err:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in FILE_SYSTEM_ERRORS:
            raise E4EBenchError(f"cannot write {path}: {err.strerror}") from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as stream:
        stream.write(text)
