"""Where a format's files are: the rank files of a folder, TensorRT-LLM's statistic folder, FLAME-MoE's layer
files. One place, so ``ImportSpec.files`` (the rule's inputs), the cheap checks and the readers agree on
exactly which files an import reads. Light (no numpy): ``ImportSpec`` imports it, and it takes the spec's
values, never the spec.
"""

from __future__ import annotations

import re
from pathlib import Path

from moelab.imports.errors import fail
from moelab.imports.formats import FORMATS

# SGLang's per_pass / per_token recorder writes one torch.save file per rank, named by dump time and rank.
SGLANG_RANK = re.compile(r"^expert_distribution_recorder_(?P<time>\d+(?:\.\d+)?)_(?P<rank>\d+)\.pt$")
TRTLLM_RANK = re.compile(r"^rank(?P<rank>\d+)\.safetensors$")
TRTLLM_META = "meta_info.json"
FLAME_LAYER = re.compile(r"^(?P<layer>\d+)\.parquet$")


def need_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise fail(path, "", f"no such file ({what})")
    if not path.is_file():
        raise fail(path, "", f"expected a file ({what}), found a folder")
    return path


def need_folder(path: Path, what: str) -> Path:
    if not path.exists():
        raise fail(path, "", f"no such folder ({what})")
    if not path.is_dir():
        raise fail(path, "", f"expected a folder ({what}), found a file")
    return path


def _ranked(folder: Path, pattern: re.Pattern, ep_size: int | None, name_of: str) -> dict[int, Path]:
    """Rank -> file in ``folder``; every rank 0..ep_size-1 (or 0..highest found) must have exactly one file."""
    found: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        m = pattern.match(p.name)
        if not m or not p.is_file():
            continue
        r = int(m.group("rank"))
        if r in found:
            raise fail(folder, "", f"two files for rank {r}: {found[r].name} and {p.name} (one dump per "
                                   f"folder: move the other dump away)")
        found[r] = p
    if not found:
        raise fail(folder, "", f"no rank files named {name_of.format(rank='<rank>')}")
    want = range(ep_size if ep_size is not None else max(found) + 1)
    for r in want:
        if r not in found:
            why = f"ep_size={ep_size}" if ep_size is not None else f"rank files up to {max(found)} are present"
            raise fail(folder / name_of.format(rank=r), "", f"missing rank file for rank {r} ({why})")
    extra = sorted(set(found) - set(want))
    if extra:
        raise fail(found[extra[0]], "", f"rank {extra[0]} is outside ep_size={ep_size} (expected ranks "
                                        f"0..{ep_size - 1}; set ep_size to the number of ranks)")
    return dict(sorted(found.items()))


def sglang_files(path: Path, ep_size: int | None) -> list[tuple[int | None, Path]]:
    """(rank, file) for an SGLang per_pass / per_token dump: a folder of rank files, or one file (its rank
    from its name when it has SGLang's name, else ``None``: the records say which ranks it holds). One rank's
    file with other ranks' files next to it is refused: give the folder. SGLang names each rank's file with
    that rank's own ``time.time()``, so the files of one dump differ in time: every other rank's file in the
    folder counts, whatever its time."""
    if path.is_dir():
        return list(_ranked(path, SGLANG_RANK, ep_size, "expert_distribution_recorder_<time>_{rank}.pt").items())
    need_file(path, "SGLang recorder dump or a folder of rank files")
    m = SGLANG_RANK.match(path.name)
    if m is None:
        return [(None, path)]
    rank = int(m.group("rank"))
    # one rank's file of a dump whose other ranks lie next to it holds 1/ep_size of the load: refuse it
    siblings = sorted(int(s.group("rank")) for p in path.parent.iterdir()
                      if (s := SGLANG_RANK.match(p.name)) and int(s.group("rank")) != rank and p.is_file())
    if siblings:
        raise fail(path, "", f"one rank file of a dump whose other ranks {siblings[:8]}"
                             f"{' ...' if len(siblings) > 8 else ''} are in the same folder: it holds only rank "
                             f"{rank}'s share of the load. Give the folder {path.parent} as path instead (and "
                             f"ep_size, the number of ranks)")
    return [(rank, path)]


def trtllm_files(folder: Path, ep_size: int | None) -> tuple[Path, dict[int, Path]]:
    """meta_info.json and rank -> rank{r}.safetensors of a TensorRT-LLM expert statistic folder."""
    need_folder(folder, "TensorRT-LLM expert statistic folder")
    meta = need_file(folder / TRTLLM_META, "TensorRT-LLM writes it next to the rank files")
    return meta, _ranked(folder, TRTLLM_RANK, ep_size, "rank{rank}.safetensors")


def flame_files(folder: Path) -> dict[int, Path]:
    """Decoder layer -> ``{layer}.parquet`` of a FLAME-MoE trace folder (one checkpoint's ``actives``)."""
    need_folder(folder, "FLAME-MoE folder of {layer}.parquet files")
    out = {int(m.group("layer")): p for p in folder.iterdir()
           if (m := FLAME_LAYER.match(p.name)) and p.is_file()}
    if not out:
        raise fail(folder, "", "no layer files named {layer}.parquet (e.g. 0.parquet)")
    return dict(sorted(out.items()))


def data_files(fmt: str, path: Path, ep_size: int | None) -> list[Path]:
    """The data files an import of format ``fmt`` at ``path`` reads (the map file aside)."""
    if fmt in ("sglang-per-pass", "sglang-per-token"):
        return [p for _, p in sglang_files(path, ep_size)]
    if fmt == "trtllm-expert-statistic":
        meta, ranks = trtllm_files(path, ep_size)
        return [meta, *ranks.values()]
    if fmt == "flame-moe":
        return list(flame_files(path).values())
    return [need_file(path, FORMATS[fmt].summary)]
