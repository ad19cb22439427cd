"""The one atomic write: every file the project writes appears whole or not at all.

The data goes to a temporary file in the target's folder (so the rename cannot cross file
systems), which is renamed over the target only when writing finished; on any exception,
Ctrl-C included, the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _default_mode() -> int:
    """The permissions `open()` would give a new file: 0o666 less the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing ("wb" or "w"); rename it to `path` on success.

    `stream.name` is the temporary file's path, for writers that need to reopen what they wrote.
    """
    assert mode in ("wb", "w"), mode
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with open(temporary, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as stream:
            yield stream
        os.chmod(temporary, _default_mode())  # mkstemp creates 0600 files; results are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as stream:
        stream.write(text)
