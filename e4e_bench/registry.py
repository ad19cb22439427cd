"""Name -> entry tables (methods, domains, assets, metrics) that refuse duplicate and malformed names."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Callable, Generic, TypeVar

from e4e_bench.errors import E4EBenchError

Entry = TypeVar("Entry")

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry(Mapping[str, Entry], Generic[Entry]):
    """A read-only mapping filled through `register`; `lookup` turns an unknown name into a user error.

    `load`, if given, is called once before the first read (entries that live in other packages, such
    as plug-ins'); registering does not call it, so a module can register its own entries at import.
    """

    def __init__(self, kind: str, pattern: re.Pattern = IDENTIFIER, load: Callable[[], None] | None = None):
        self.kind = kind  # "method", "domain", ...: the word used in messages
        self.pattern = pattern
        self._load = load
        self._store: dict[str, Entry] = {}

    @property
    def _entries(self) -> dict[str, Entry]:
        if self._load is not None:
            load, self._load = self._load, None
            load()
        return self._store

    def check_new_name(self, name: str) -> None:
        """ValueError unless `name` is well formed and not registered yet."""
        if not isinstance(name, str) or not self.pattern.match(name):
            raise ValueError(f"{self.kind} name {name!r} must match {self.pattern.pattern}")
        if name in self._store:
            raise ValueError(f"{self.kind} {name!r} is registered twice")

    def register(self, name: str, entry: Entry) -> Entry:
        self.check_new_name(name)
        self._store[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        del self._store[name]

    @contextmanager
    def registered(self, name: str, entry: Entry) -> Iterator[Entry]:
        """`entry` under `name` for the duration of a `with` block (tests, temporary plugins)."""
        self.register(name, entry)
        try:
            yield entry
        finally:
            self.unregister(name)

    def lookup(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise E4EBenchError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}") from None

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
