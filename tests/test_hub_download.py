"""Fetching a hub checkpoint into the Hugging Face cache, then capturing from the cache offline.

A real HTTP server in a thread stands in for the hub: huggingface_hub is pointed at it through its own
``endpoint`` setting and makes the calls it makes against huggingface.co (the revision API, the tree listing,
HEAD and GET on ``resolve/``), served as plain HTTP files (no Xet headers, so the client downloads them
directly). Nothing is mocked.
"""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import huggingface_hub
import numpy as np
import pytest

from moelab import capture, corpus, hub

from tiny_models import save_model

REPO = "moelab-test/tiny-olmoe"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves repos ``{repo_id: {revision: (commit, folder)}}`` with the routes huggingface_hub 2.4 calls."""

    def __init__(self):
        self.repos: dict[str, dict[str, tuple[str, Path]]] = {}
        self.requests: list[tuple[str, str]] = []
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):  # noqa: N802 - http.server's naming
                hub_.serve(self, body=False)

            def do_GET(self):  # noqa: N802
                hub_.serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    def _lookup(self, repo: str, rev: str):
        revs = self.repos.get(repo)
        if revs is None:
            return None, "RepoNotFound"
        for name, (commit, folder) in revs.items():
            if rev in (name, commit):
                return (commit, folder), None
        return None, "RevisionNotFound"

    @staticmethod
    def _files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def serve(self, h: BaseHTTPRequestHandler, body: bool):
        path = unquote(urlparse(h.path).path)
        self.requests.append((h.command, path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            repo, kind, rev = "/".join(parts[2:4]), parts[4], parts[5]
            found, error = self._lookup(repo, rev)
            if found is None:
                return self._send(h, 404, {"error": error}, {"X-Error-Code": error}, body)
            commit, folder = found
            entries = [{"type": "file", "path": p.relative_to(folder).as_posix(), "size": p.stat().st_size,
                        "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for p in self._files(folder)]
            if kind == "revision":
                return self._send(h, 200, {"id": repo, "sha": commit, "private": False,
                                           "siblings": [{"rfilename": e["path"]} for e in entries]}, {}, body)
            return self._send(h, 200, entries, {}, body)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            found, error = self._lookup(repo, rev)
            if found is None:
                return self._send(h, 404, {"error": error}, {"X-Error-Code": error}, body)
            commit, folder = found
            f = folder / name
            if not f.is_file():
                return self._send(h, 404, {"error": "EntryNotFound"},
                                  {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, body)
            data = f.read_bytes()
            return self._send(h, 200, data, {"X-Repo-Commit": commit,
                                             "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, body)
        return self._send(h, 404, {"error": "no such route"}, {}, body)

    @staticmethod
    def _send(h, status, payload, headers, body):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data)


@pytest.fixture
def fake_hub():
    server = FakeHub()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny OLMoE saved like a hub repo, plus a PyTorch copy of the weights that capture does not need."""
    d = tmp_path_factory.mktemp("repo")
    path = save_model("olmoe", d / "m", d / "tok")
    (path / "pytorch_model.bin").write_bytes(b"not fetched")
    return path


@pytest.fixture(scope="module")
def small_corpus():
    return corpus.build(("prose", "code"), max_chars=1500, doc_chars=500, heldout=0.2, seed=3)


def run(model, tok, small_corpus):
    return capture.capture(model, tok, small_corpus, source_id="captured-hub", concurrency=4, seq_len=16,
                           batch_size=4, seed=1, max_iterations=12, progress=False)


def test_download_fills_the_cache_and_capture_reads_it_offline(tmp_path, fake_hub, checkpoint, small_corpus,
                                                                monkeypatch):
    fake_hub.repos[REPO] = {"main": (COMMIT, checkpoint), "v1": (COMMIT, checkpoint)}
    cache = tmp_path / "hf-cache"
    record = hub.download(REPO, "v1", model="tiny-hub", cache=cache, endpoint=fake_hub.url)
    assert record["commit"] == COMMIT and record["revision"] == "v1" and record["endpoint"] == fake_hub.url
    want = {p.name: p.stat().st_size for p in checkpoint.iterdir() if p.name != "pytorch_model.bin"}
    assert {f["path"]: f["size"] for f in record["files"]} == want
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(want)
    snap = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert record["snapshot"] == str(snap.resolve())
    assert (cache / f"models--{REPO.replace('/', '--')}" / "refs" / "v1").read_text() == COMMIT
    assert not (snap / "pytorch_model.bin").exists(), "weights capture does not read are not fetched"
    # the client's own calls: the revision API, the tree, then HEAD and GET on resolve/ per file
    assert ("GET", f"/api/models/{REPO}/revision/v1") in fake_hub.requests
    assert ("GET", f"/{REPO}/resolve/{COMMIT}/model.safetensors") in fake_hub.requests
    gets = sum(m == "GET" and "/resolve/" in p for m, p in fake_hub.requests)
    assert gets == len(want)
    # fetching again fetches no file
    assert hub.download(REPO, "v1", cache=cache, endpoint=fake_hub.url)["files"] == record["files"]
    assert sum(m == "GET" and "/resolve/" in p for m, p in fake_hub.requests) == gets
    rec_path = tmp_path / "tiny-hub.json"
    rec_path.write_text(json.dumps(record))

    # Loading asks the hub nothing, even where it could: the client's default endpoint is the server.
    entry = {"name": "tiny-hub", "path": REPO, "dtype": "float32"}
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", fake_hub.url)
    seen = len(fake_hub.requests)
    capture.load_entry(entry, "cpu", rec_path, cache_dir=str(cache))
    assert fake_hub.requests[seen:] == []
    # Capture: the hub is gone and the client is offline; the commit loads from the cache alone.
    fake_hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model, tok = capture.load_entry(entry, "cpu", [str(rec_path)], cache_dir=str(cache))  # as the rule passes it
    got = run(model, tok, small_corpus)
    want_cap = run(*capture.load(str(checkpoint)), small_corpus)
    assert got.meta.num_experts == 8 and got.stream.n_tokens == 12 * 4
    assert np.array_equal(got.experts, want_cap.experts)
    np.testing.assert_array_equal(got.weights, want_cap.weights)

    # a job that sees another cache than the download did says so
    with pytest.raises(hub.HubError, match="not in this job's Hugging Face cache.*HF_HOME"):
        capture.load_entry(entry, "cpu", rec_path, cache_dir=str(tmp_path / "other-cache"))


def test_failed_download_names_the_model_the_hub_id_and_the_endpoint(tmp_path, fake_hub):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/config.json").write_text("{}")
    fake_hub.repos[REPO] = {"main": (COMMIT, tmp_path / "repo")}
    with pytest.raises(hub.HubError) as err:
        hub.download("moelab-test/no-such-model", model="ghost", cache=tmp_path / "c", endpoint=fake_hub.url)
    msg = str(err.value)
    assert "capture.models 'ghost'" in msg and "'moelab-test/no-such-model'" in msg and fake_hub.url in msg
    assert "no such repo" in msg
    with pytest.raises(hub.HubError, match=r"'tiny-hub'.*no \*\.safetensors weights"):
        hub.download(REPO, model="tiny-hub", cache=tmp_path / "c", endpoint=fake_hub.url)
    with pytest.raises(hub.HubError, match="no such revision"):
        hub.download(REPO, "v9", model="tiny-hub", cache=tmp_path / "c", endpoint=fake_hub.url)
    # no network (nothing listens at the endpoint) and nothing cached
    fake_hub.stop()
    with pytest.raises(hub.HubError, match=f"{fake_hub.url}.*cannot be reached"):
        hub.download(REPO, model="tiny-hub", cache=tmp_path / "empty", endpoint=fake_hub.url)
