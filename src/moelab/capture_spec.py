"""The capture stage's config block ``capture`` as a frozen spec, and where configured checkpoints live.

A light module (the workflow builds the spec at start, before any job): checkpoints must exist before anything
runs, as a local ``save_pretrained`` folder or a hub id already in the local Hugging Face cache (runs are
offline); ``embedded:tiny`` and ``embedded:tiny-untrained`` are the pipeline's own checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from moelab.spec import ConfigSpec

EMBEDDED = {"embedded:tiny": "results/models/tiny", "embedded:tiny-untrained": "results/models/tiny-untrained"}


def model_dir(path: str) -> str:
    """Where a configured model lives: the embedded checkpoints map to the pipeline's outputs."""
    return EMBEDDED.get(path, path)


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def check_model(path: str) -> None:
    """A configured checkpoint must exist before anything runs: a local folder with config.json,
    or a hub id already in the local cache (runs are offline)."""
    if path in EMBEDDED:
        return
    if path.startswith("embedded:"):
        raise ValueError(f"path={path!r}: unknown embedded checkpoint (known: {sorted(EMBEDDED)})")
    local = Path(path)
    if local.exists() or path.startswith((".", "/", "~")) or path.count("/") != 1:
        if not (local.expanduser() / "config.json").exists():
            raise ValueError(f"path={path!r}: expected a folder with config.json (a save_pretrained "
                             f"checkpoint); none found")
        return
    cached = _hub_cache() / f"models--{path.replace('/', '--')}"
    if not cached.exists():
        raise ValueError(f"path={path!r}: not a local folder and not in the Hugging Face cache "
                         f"{_hub_cache()} (runs are offline). Download it where there is network "
                         f"(`hf download {path}`) and copy the cache here, or give a local folder")


@dataclass(frozen=True)
class ModelEntry(ConfigSpec):
    """One ``capture.models`` entry; unset values come from the ``capture`` block."""

    key = "capture.models[]"
    name: str
    path: str
    dtype: str | None = None
    seq_len: int | None = None
    batch_size: int | None = None
    arrival: str = "shuffled"
    phase_requests: int | None = None

    def __post_init__(self) -> None:
        if self.phase_requests is not None and self.arrival != "domain_phases":
            raise ValueError("phase_requests applies to arrival: domain_phases only")
        check_model(self.path)

    @property
    def embedded(self) -> bool:
        return self.path in EMBEDDED


@dataclass(frozen=True)
class CaptureSpec(ConfigSpec):
    """Config block ``capture``: every model becomes trace ``captured-<name>``; ``proxy`` names the models
    whose gaussian-input control becomes ``proxy-<name>``."""

    key = "capture"
    seq_len: int
    batch_size: int
    dtype: str
    device: str
    parts: tuple[str, ...]
    models: tuple[ModelEntry, ...]
    proxy: tuple[str, ...]
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        models = tuple(m if isinstance(m, ModelEntry) else ModelEntry.from_config(m, f"capture.models[{i}]")
                       for i, m in enumerate(self.models))
        object.__setattr__(self, "models", models)
        names: dict[str, int] = {}
        for i, m in enumerate(models):
            if m.name in names:
                raise ValueError(f"models[{i}].name={m.name!r} repeats capture.models[{names[m.name]}]")
            names[m.name] = i
        for j, name in enumerate(self.proxy):
            if name not in names:
                raise ValueError(f"proxy[{j}]={name!r} is not a capture.models name (known: {sorted(names)})")

    def model(self, name: str) -> dict:
        """One model's capture settings, the block's defaults filled in (a capture rule's parameter)."""
        m = next(m for m in self.models if m.name == name)
        return {"name": m.name, "path": model_dir(m.path), "dtype": m.dtype or self.dtype,
                "seq_len": m.seq_len or self.seq_len, "batch_size": m.batch_size or self.batch_size,
                "arrival": m.arrival, "phase_requests": m.phase_requests or 128}
