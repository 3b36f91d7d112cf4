"""``ImportSpec``: one entry of the config list ``imports:``, checked before any job runs.

The entry names a user's file (or folder) and its format, plus the facts the format does not store (see
``formats.FORMATS``). Building the spec checks the config alone; ``check_files`` then checks the files cheaply
(headers, keys, rank files), and ``files`` lists every file the import reads, so a rule that takes them as
inputs reruns exactly when one of them changes.

The spec sits above ``layout`` and ``checks``, which take its values, never the spec. ``layout`` is light and
imported here at once; ``checks`` (numpy, torch) is imported by ``check_files`` when it runs, so importing
this module, as the workflow does at every parse, stays light.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import moelab.imports.layout as layout
from moelab.imports.formats import FORMATS, FormatInfo
from moelab.spec import ConfigError, ConfigSpec

NAME = re.compile(r"^[A-Za-z0-9_.]+$")  # no '-': the name becomes part of file ids like imported-<name>
MAP_SUFFIXES = (".npy", ".pt", ".json")
YAML_MAP = (".yaml", ".yml")  # TensorRT-LLM's load-balancer config, as a slot map of its statistic
DEFAULT_CONCURRENCY = 64
DEFAULT_DOMAIN = "imported"
FLAME_EXPERTS = 64  # FLAME-MoE's published traces route over 64 experts


class _KeyError(ConfigError):
    """A bad value of one key; ``from_config`` turns it into ``<where>.<key>: ...``."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def _positive(key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _KeyError(key, f"expected an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class ImportSpec(ConfigSpec):
    """One ``imports[i]`` entry. Unset optional keys are ``None`` except the trace defaults
    (``concurrency`` 64, ``domain`` ``imported``) and FLAME-MoE's 64 experts, filled in when they apply."""

    key: ClassVar[str] = "imports[]"
    name: str
    format: str
    path: str
    experts: int | None = None
    top_k: int | None = None
    ep_size: int | None = None
    physical_to_logical: str | None = None
    moe_layers: tuple[int, ...] | None = None
    num_hidden_layers: int | None = None
    concurrency: int | None = None
    domain: str | None = None
    ring_start: int | None = None

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None, where: str | None = None) -> "ImportSpec":
        where = where or cls.key
        try:
            return super().from_config(block, where)
        except _KeyError as exc:
            raise ConfigError(f"{where}.{exc.key}: {exc.problem}") from None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise _KeyError("name", f"{self.name!r} must match [A-Za-z0-9_.]+ (no '-': it becomes part of "
                                    f"the id imported-<name>)")
        if self.format not in FORMATS:
            raise _KeyError("format", f"unknown format {self.format!r}; known: {sorted(FORMATS)}")
        if not isinstance(self.path, str) or not self.path:
            raise _KeyError("path", f"expected a file or folder path, got {self.path!r}")
        info = self.info
        given = {f.name for f in fields(self) if f.name not in ("name", "format", "path")
                 and getattr(self, f.name) is not None}
        for k in sorted(given - info.keys):
            raise _KeyError(k, f"does not apply to format {self.format!r} (it takes: "
                               f"{sorted(info.keys) or 'no extra keys'})")
        for k in sorted(info.required - given):
            raise _KeyError(k, f"format {self.format!r} needs it (the files do not hold it)")
        for k in ("experts", "top_k", "ep_size", "num_hidden_layers", "concurrency"):
            _positive(k, getattr(self, k))
        if self.ring_start is not None and (isinstance(self.ring_start, bool) or not isinstance(self.ring_start, int)
                                            or self.ring_start < 0):
            raise _KeyError("ring_start", f"expected the row of the oldest recorded pass (an integer >= 0), got "
                                          f"{self.ring_start!r}")
        if self.experts is not None and self.experts > 65535:
            raise _KeyError("experts", f"{self.experts} does not fit the trace's u16 expert ids")
        suffixes = MAP_SUFFIXES + (YAML_MAP if self.format == "trtllm-expert-statistic" else ())
        if self.physical_to_logical is not None and (not isinstance(self.physical_to_logical, str)
                                                     or Path(self.physical_to_logical).suffix not in suffixes):
            raise _KeyError("physical_to_logical", f"{self.physical_to_logical!r}: expected a path ending in "
                                                   f"one of {suffixes}")
        if isinstance(self.moe_layers, list):  # built directly rather than from config
            object.__setattr__(self, "moe_layers", tuple(self.moe_layers))
        if self.moe_layers is not None:
            ml = self.moe_layers
            if (not isinstance(ml, tuple) or not ml
                    or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in ml)):
                raise _KeyError("moe_layers", f"expected a non-empty list of decoder-layer indices >= 0, got {ml!r}")
            if any(b <= a for a, b in zip(ml, ml[1:])):
                raise _KeyError("moe_layers", f"{list(ml)} must be strictly increasing")
        if self.domain is not None and (not isinstance(self.domain, str) or not self.domain):
            raise _KeyError("domain", f"expected a non-empty string, got {self.domain!r}")
        if (self.format == "sglang-routed-experts" and self.experts is None
                and self.physical_to_logical is None):
            raise _KeyError("experts", "format 'sglang-routed-experts' needs the logical expert count (or a "
                                       "physical_to_logical map): the responses hold expert ids only")
        if info.kind == "trace":
            if self.concurrency is None:
                object.__setattr__(self, "concurrency", DEFAULT_CONCURRENCY)
            if self.domain is None:
                object.__setattr__(self, "domain", DEFAULT_DOMAIN)
        if self.format == "flame-moe" and self.experts is None:
            object.__setattr__(self, "experts", FLAME_EXPERTS)

    @property
    def info(self) -> FormatInfo:
        return FORMATS[self.format]

    @property
    def kind(self) -> str:
        """``hotness`` or ``trace``."""
        return self.info.kind

    @property
    def source_id(self) -> str:
        """The id of what the import produces (a trace's ``source_id``)."""
        return f"imported-{self.name}"

    def files(self) -> list[str]:
        """Every file the import reads, sorted: the data files (each rank file of a folder, meta_info.json)
        and the map file. Raises ImportFileError when an expected file is missing."""
        out = [str(p) for p in layout.data_files(self.format, Path(self.path), self.ep_size)]
        if self.physical_to_logical is not None:
            out.append(str(Path(self.physical_to_logical)))
        return sorted(set(out))

    def check_files(self) -> None:
        """Cheap checks before any job: files exist, every rank file is there, headers, keys, shapes and
        dtypes where they are cheap to read. Raises ImportFileError naming the file, field and expectation."""
        import moelab.imports.checks as checks  # numpy and torch: only when the files are checked

        for f in self.files():  # every expected file is there (rank files, meta_info.json, the map)
            layout.need_file(Path(f), "listed by the import")
        checks.check(self.format, Path(self.path), experts=self.experts, top_k=self.top_k, ep_size=self.ep_size,
                     physical_to_logical=self.physical_to_logical, moe_layers=self.moe_layers,
                     ring_start=self.ring_start)
