"""The one device resolver: what ``device: auto | cpu | cuda[:N]`` in the config means on this machine."""

from __future__ import annotations


class DeviceError(RuntimeError):
    """A configured device that this machine does not have."""


def resolve_device(name: str, key: str = "device") -> str:
    """``auto`` is CUDA when torch sees a GPU, else the CPU; ``cuda`` (or ``cuda:N``) must exist here.

    ``key`` is the config key the value came from, so the error names it."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"{key}={name!r}: torch sees no CUDA device on this machine (use cpu or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise DeviceError(f"{key}={name!r}: expected auto, cpu, cuda or cuda:N")
    return name
