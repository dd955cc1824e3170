"""One small name -> entry registry used for sites, filters, taggers, optimizers, metrics...

The registry drives creation, `--list-*` help and parametrised tests (timm's habit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, Iterator, TypeVar

from lorakiln.core.errors import KilnError

T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    kind: str
    _items: dict[str, T] = field(default_factory=dict)

    def register(self, name: str, item: T | None = None):
        """Register `item` under `name`; usable as a decorator when `item` is omitted."""
        if item is not None:
            self._add(name, item)
            return item

        def deco(obj: T) -> T:
            self._add(name, obj)
            return obj

        return deco

    def _add(self, name: str, item: T) -> None:
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KilnError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


Factory = Callable[..., T]
