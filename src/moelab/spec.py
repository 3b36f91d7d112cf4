"""Frozen specs: the one way a config block reaches the library.

Each config block has a frozen dataclass whose fields are the block's own keys (``DynamicSpec`` for
``placement.dynamic``, ``StudySpec`` for ``routing.train``, ...). ``Spec.from_config(block)`` is the one
constructor from config: it refuses unknown keys, turns lists into tuples, and runs the spec's own checks
(``__post_init__``), so every error names the key as the config spells it. ``moelab.config.check`` builds
every spec before any job runs; a rule passes the block as a parameter and its script builds the same spec
with ``from_config``. Library functions take specs or plain values, never the config dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

S = TypeVar("S", bound="ConfigSpec")


class ConfigError(ValueError):
    """A config value that cannot work, named by its dotted key (e.g. ``placement.dynamic.devices``)."""


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class ConfigSpec:
    """Mixin for frozen dataclasses built from one config block (the class attribute ``key`` names it)."""

    key: ClassVar[str] = ""

    @classmethod
    def from_config(cls: type[S], block: Mapping[str, Any] | None, where: str | None = None) -> S:
        where = where or cls.key
        if not isinstance(block, Mapping):
            raise ConfigError(f"{where}: expected a mapping of keys, got {block!r}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(block) - set(fields))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(fields)})")
        missing = sorted(n for n, f in fields.items() if n not in block and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ConfigError(f"{where}: missing keys {missing}")
        try:
            return cls(**{k: _frozen(v) for k, v in block.items()})
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_config(self) -> dict[str, Any]:
        """The block back as config values (tuples as lists): what a rule passes as a parameter."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}
