"""Name -> object registries, one per axis (objective, dataset, ...).

Unknown names fail loudly with the list of valid ones; the same list feeds the CLI's help.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gankit.errors import GankitError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of objects, filled with the ``@registry.register("name")`` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # what the names are, for error messages: "family", "dataset", ...
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise GankitError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
