"""Hub checkpoints: fetch a configured hub id into the Hugging Face cache, and the record of what was fetched.

The ``download_model`` rule calls :func:`download` where there is network (a ``localrule``: the Slurm login
node); every other job reads the checkpoint from the cache only (``local_files_only``). The cache is the
client's own: ``HF_HUB_CACHE``, else ``$HF_HOME/hub`` (on a cluster, a shared file system that the jobs see
under the same path); the hub is ``HF_ENDPOINT`` (default https://huggingface.co), or ``endpoint=``.

The record (:func:`download` returns it; the rule writes it as ``results/models/hub/<model>.json``) names the
repo, the revision asked for, the commit it resolved to, the snapshot folder and every file with its size.
Capture loads that commit, so a branch that moves on the hub does not change a capture mid-run.
"""

from __future__ import annotations

import os
from pathlib import Path

# What capture needs of a repo: configs, safetensors weights, tokenizer files. Repos often hold the same
# weights twice more (PyTorch .bin, consolidated originals); those are not fetched.
PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja")


class HubError(RuntimeError):
    """A hub checkpoint that cannot be fetched or is not in the cache, naming the model, id and endpoint."""


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache this process uses (``HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    if override is not None:
        return Path(override).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def endpoint_of(endpoint: str | None = None) -> str:
    """The hub endpoint a download goes to (``HF_ENDPOINT`` unless given)."""
    if endpoint:
        return endpoint.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _hint(exc: Exception) -> str:
    """What to do about a failed download, from the client's error and what caused it."""
    import httpx2
    from huggingface_hub import errors

    chain = _chain(exc)
    if any(isinstance(e, errors.GatedRepoError) for e in chain):
        return ("the repo is gated: accept its terms on the hub page and make a token visible where the rule "
                "runs (`hf auth login` or HF_TOKEN)")
    if any(isinstance(e, errors.RevisionNotFoundError) for e in chain):
        return "the repo has no such revision (branch, tag or commit)"
    if any(isinstance(e, errors.RepositoryNotFoundError) for e in chain):
        return ("no such repo at this endpoint, or a private one: check the id (if you meant a local folder, it "
                "does not exist here) or make a token visible (`hf auth login` or HF_TOKEN)")
    if any(isinstance(e, errors.OfflineModeIsEnabled) for e in chain):
        return "HF_HUB_OFFLINE is set: this rule fetches, so unset it where the rule runs"
    if any(isinstance(e, (httpx2.ConnectError, httpx2.TimeoutException)) for e in chain):
        return ("the endpoint cannot be reached: the download runs where Snakemake runs (a local rule: the "
                "login node under Slurm), which needs network to the endpoint (HF_ENDPOINT)")
    return "the client's error is chained below"


def download(repo_id: str, revision: str | None = None, *, model: str | None = None,
             cache: str | os.PathLike | None = None, endpoint: str | None = None,
             patterns: tuple[str, ...] = PATTERNS) -> dict:
    """Fetch ``repo_id`` (at ``revision``, default the main branch) into the hub cache; return its record.

    Files already in the cache are not fetched again. Raises :class:`HubError` naming ``model`` (the
    ``capture.models`` name), the hub id, the revision and the endpoint when anything fails."""
    from huggingface_hub import snapshot_download

    where = endpoint_of(endpoint)
    cache_path = cache_dir(cache)
    who = f"capture.models {model!r}: hub id {repo_id!r}" if model else f"hub id {repo_id!r}"
    rev = revision or "main"
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_path, endpoint=where,
                                        allow_patterns=list(patterns)))
    except Exception as exc:  # noqa: BLE001 - any failure becomes one error that names what was asked
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise HubError(f"{who} (revision {rev!r}): download from {where} into {cache_path} failed: "
                       f"{type(exc).__name__}: {first} ({_hint(exc)})") from exc
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    listed = [{"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size} for p in files]
    names = {f["path"] for f in listed}
    if "config.json" not in names:
        raise HubError(f"{who} (revision {rev!r}) from {where}: the repo has no config.json: not a "
                       f"transformers checkpoint")
    if not any(n.endswith(".safetensors") for n in names):
        raise HubError(f"{who} (revision {rev!r}) from {where}: no *.safetensors weights in the repo "
                       f"(capture loads safetensors checkpoints; files: {sorted(names)[:10]})")
    return {"repo_id": repo_id, "revision": revision, "commit": folder.name, "endpoint": where,
            "cache": str(cache_path), "snapshot": str(folder), "files": listed,
            "bytes": sum(f["size"] for f in listed)}


def snapshot(record: dict, cache: str | os.PathLike | None = None) -> Path:
    """The cached snapshot folder of a download record, checked in *this* process's cache: a job that sees
    another cache than the download did (HF_HOME not exported to it) fails here, saying so."""
    repo_id, commit = record["repo_id"], record["commit"]
    folder = cache_dir(cache) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    missing = [f["path"] for f in record["files"] if not (folder / f["path"]).is_file()]
    if missing:
        raise HubError(f"hub id {repo_id!r} commit {commit}: {len(missing)} file(s) of the download "
                       f"({', '.join(missing[:3])}) are not in this job's Hugging Face cache {folder.parent.parent} "
                       f"(downloaded into {record['cache']}): give the jobs the same HF_HOME / HF_HUB_CACHE "
                       f"(a shared file system on a cluster), or rerun the download rule")
    return folder
