"""The capture stage's config block ``capture`` as a frozen spec, and where configured checkpoints live.

A light module (the workflow builds the spec at start, before any job, and never touches the network): a
checkpoint is ``embedded:tiny`` / ``embedded:tiny-untrained`` (the pipeline's own), a local
``save_pretrained`` folder (it must hold config.json now), or a hub id ``org/name``, which only has to be
well-formed here: the ``download_model`` rule fetches it into the Hugging Face cache and capture then reads the
cache only (``moelab.hub``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from moelab.spec import ConfigSpec

EMBEDDED = {"embedded:tiny": "results/models/tiny", "embedded:tiny-untrained": "results/models/tiny-untrained"}
# A hub repo id: owner/name, each of letters, digits, '-', '_', '.', starting with a letter or digit.
_HUB_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_MAP_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]+)?)$")


def model_dir(path: str) -> str:
    """Where a configured model lives: the embedded checkpoints map to the pipeline's outputs."""
    return EMBEDDED.get(path, path)


def is_hub_id(path: str) -> bool:
    """Whether ``path`` is a well-formed hub repo id ``owner/name`` (not whether it exists)."""
    parts = path.split("/")
    return (len(parts) == 2 and all(_HUB_PART.match(p) for p in parts) and len(path) <= 96
            and "--" not in path and ".." not in path and not path.endswith((".git", ".")))


def check_model(path: str) -> str:
    """Where a configured checkpoint comes from: ``embedded``, ``local`` or ``hub``.

    A local folder must hold config.json now; a hub id only has to be well-formed (the download rule fetches
    it; nothing here goes to the network). A path that names an existing folder is local even if it looks
    like ``owner/name``."""
    if path in EMBEDDED:
        return "embedded"
    if path.startswith("embedded:"):
        raise ValueError(f"path={path!r}: unknown embedded checkpoint (known: {sorted(EMBEDDED)})")
    local = Path(path).expanduser()
    if local.exists() or path.startswith((".", "/", "~")) or path.count("/") != 1:
        if not (local / "config.json").exists():
            raise ValueError(f"path={path!r}: expected a folder with config.json (a save_pretrained "
                             f"checkpoint); none found (a hub id is owner/name, e.g. allenai/OLMoE-1B-7B-0924)")
        return "local"
    if not is_hub_id(path):
        raise ValueError(f"path={path!r}: neither a local folder nor a well-formed hub id (owner/name of "
                         f"letters, digits, '-', '_' and '.', e.g. allenai/OLMoE-1B-7B-0924)")
    return "hub"


def _check_device_map(device_map, gpus: int) -> None:  # noqa: ANN001
    if isinstance(device_map, str):
        if device_map not in DEVICE_MAPS:
            raise ValueError(f"device_map={device_map!r}: expected one of {DEVICE_MAPS} or a mapping of module "
                             f"names to devices")
        return
    if not isinstance(device_map, dict) or not device_map:
        raise ValueError(f"device_map={device_map!r}: expected one of {DEVICE_MAPS} or a mapping of module "
                         f"names to devices")
    for module, dev in device_map.items():
        if isinstance(dev, bool) or not (isinstance(dev, int) and dev >= 0
                                         or isinstance(dev, str) and _MAP_DEVICE.match(dev)):
            raise ValueError(f"device_map[{module!r}]={dev!r}: expected a GPU index, cpu, cuda or cuda:N")
        index = dev if isinstance(dev, int) else (int(dev.split(":")[1]) if ":" in dev else 0)
        if (isinstance(dev, int) or dev.startswith("cuda")) and index >= gpus:
            raise ValueError(f"device_map[{module!r}]={dev!r}: GPU {index} is not among the job's gpus={gpus}")


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
    revision: str | None = None
    device_map: str | dict | None = None
    gpus: int | None = None
    mem_mb: int | None = None

    def __post_init__(self) -> None:
        if self.phase_requests is not None and self.arrival != "domain_phases":
            raise ValueError("phase_requests applies to arrival: domain_phases only")
        source = check_model(self.path)
        if self.revision is not None and source != "hub":
            raise ValueError(f"revision={self.revision!r} applies to hub ids only, not to path={self.path!r}")
        if self.gpus is not None and (isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0):
            raise ValueError(f"gpus={self.gpus!r}: expected a GPU count >= 0")
        if self.mem_mb is not None and (isinstance(self.mem_mb, bool) or not isinstance(self.mem_mb, int)
                                        or self.mem_mb < 1):
            raise ValueError(f"mem_mb={self.mem_mb!r}: expected megabytes >= 1")
        if self.device_map is not None:
            _check_device_map(self.device_map, self.job_gpus)
        elif self.job_gpus > 1:
            raise ValueError(f"gpus={self.gpus}: a model spreads over several GPUs only with a device_map "
                             f"(e.g. device_map: auto)")

    @property
    def source(self) -> str:
        """``embedded``, ``local`` or ``hub`` (see :func:`check_model`)."""
        return check_model(self.path)

    @property
    def embedded(self) -> bool:
        return self.path in EMBEDDED

    @property
    def hub(self) -> bool:
        return self.source == "hub"

    @property
    def job_gpus(self) -> int:
        """GPUs the capture job asks for: ``gpus``, else one for a real checkpoint and none for the embedded."""
        if self.gpus is not None:
            return self.gpus
        return 0 if self.embedded else 1

    @property
    def job_mem_mb(self) -> int:
        """Memory (MB) the capture job asks for at its first attempt (retries ask for more)."""
        return self.mem_mb or 8000


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
        out = {"name": m.name, "path": model_dir(m.path), "dtype": m.dtype or self.dtype,
               "seq_len": m.seq_len or self.seq_len, "batch_size": m.batch_size or self.batch_size,
               "arrival": m.arrival, "phase_requests": m.phase_requests or 128}
        # only when set, so configs without them keep their parameters (and their results) as they were;
        # gpus and mem_mb are resources, not parameters: changing them reruns nothing
        if m.revision is not None:
            out["revision"] = m.revision
        if m.device_map is not None:
            out["device_map"] = m.device_map
        return out
