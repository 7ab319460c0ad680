"""A Hugging Face Hub id resolved offline, from a cache laid out as huggingface_hub lays it out
(``$HF_HOME/hub/models--ORG--NAME/snapshots/<commit>/…``, ``refs/main``): the same model as its folder; not
cached, one sentence; the environment read at each call. Nothing is downloaded: ``HF_HUB_OFFLINE=1``, or an
endpoint nobody listens on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.model.inference import InferenceEngine
from explorer.model.pretrained import PretrainedUnavailable, UnsupportedModel, hub, load_folder, load_model
from tests.hf_models import hub_cache, write_model

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    folder = write_model(root / "tiny-roberta", "roberta")
    home = root / "home"
    hub_cache(home / "hub", "someone/tiny-roberta", folder, COMMIT)
    return folder, home


@pytest.fixture
def offline_home(tiny, monkeypatch):
    folder, home = tiny
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder, home


def test_a_cached_hub_id_is_the_same_model_as_its_folder(offline_home):
    folder, home = offline_home
    said = []
    cached = load_model("someone/tiny-roberta", progress=said.append)
    direct = load_folder(folder)
    assert cached.name == "someone/tiny-roberta" and cached.info["revision"] == COMMIT
    assert "Hugging Face Hub" in cached.source and said and "needs about" in said[0]
    assert (
        hub.cached_folder("someone/tiny-roberta")
        == home / "hub" / "models--someone--tiny-roberta" / "snapshots" / COMMIT
    )
    engine = InferenceEngine(direct.config)
    text = "She opened the [MASK] and walked in."
    a, b = pipeline.fill_mask(cached, engine, text), pipeline.fill_mask(direct, engine, text)
    assert [(f.position, f.ids) for f in a] == [(f.position, f.ids) for f in b]
    np.testing.assert_array_equal([p for f in a for _, p in f.predictions], [p for f in b for _, p in f.predictions])


def test_a_hub_id_not_in_the_cache_is_one_sentence_offline(offline_home):
    _, home = offline_home
    with pytest.raises(PretrainedUnavailable) as error:
        load_model("someone/elsewhere")
    message = str(error.value)
    assert message.startswith("someone/elsewhere is not in the Hugging Face cache") and str(home / "hub") in message
    assert "HF_HUB_OFFLINE is set" in message and "\n" not in message


def test_the_cache_is_found_where_huggingface_hub_looks(tiny, monkeypatch, tmp_path):
    folder, home = tiny
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))  # wins over HF_HOME, as in huggingface_hub
    assert hub.cache_dir() == home / "hub"
    assert load_model("someone/tiny-roberta").name == "someone/tiny-roberta"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    for value, expected in (("1", True), ("true", True), ("YES", True), ("0", False), ("", False)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert hub.offline() is expected


def test_a_cached_pickle_is_refused(offline_home, tmp_path):
    _, home = offline_home
    pickled = tmp_path / "pickled"
    write_model(pickled, "bert")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    hub_cache(home / "hub", "someone/pickled", pickled)
    with pytest.raises(UnsupportedModel, match="pytorch_model.bin, a pickle, which can run code"):
        load_model("someone/pickled")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("bert-base-uncased", True),
        ("FacebookAI/roberta-base", True),
        ("google/electra-small-generator", True),
        ("a/b/c", False),
        ("../up", False),
        ("has space/x", False),
        ("org--name", False),
        ("/absolute/path", False),
        ("", False),
    ],
)
def test_what_counts_as_a_hub_id(text, expected):
    assert hub.looks_like_hub_id(text) is expected


def test_a_folder_wins_over_a_hub_id_and_a_missing_path_is_said(offline_home, tmp_path, monkeypatch):
    folder, _ = offline_home
    monkeypatch.chdir(folder.parent)
    assert load_model(folder.name).name == folder.name  # "tiny-roberta" is a folder here, not a Hub id
    with pytest.raises(PretrainedUnavailable, match="is not a folder"):
        load_model(str(tmp_path / "no" / "such" / "folder"))


def cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "explorer", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "PYTHONPATH": str(ROOT)},
    )


def test_without_the_network_the_cache_still_serves_and_a_missing_id_exits_2(tiny):
    import os

    _, home = tiny
    # No HF_HUB_OFFLINE: the Hub is asked first, at an address nobody listens on, then the cache is read.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(home), HF_ENDPOINT="http://127.0.0.1:9")
    served = cli("predict", "The cat sat on the [MASK].", "--model", "someone/tiny-roberta", "--json", env=env)
    assert served.returncode == 0, served.stderr
    missing = cli("predict", "The cat sat on the [MASK].", "--model", "someone/missing", env=env)
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1, missing.stderr
    assert "someone/missing is not in the Hugging Face cache" in lines[0] and "cannot be reached" in lines[0]
    offline = cli("inspect", "hi", "--model", "someone/missing", env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and len(offline.stderr.strip().splitlines()) == 1
    assert "HF_HUB_OFFLINE is set" in offline.stderr


# ----------------------------------------------------------------------------------------------------
# Downloading, against a local server that answers as the Hub does (HF_ENDPOINT): no real network.


class FakeHub:
    """The Hub endpoints huggingface_hub's ``model_info`` and ``hf_hub_download`` call, serving folders as
    repositories; it records every path asked for, so a test can say what was (never) downloaded."""

    def __init__(self, repos: dict[str, Path], commit: str = COMMIT):
        import http.server
        import json
        import threading

        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _file(self):
                for repo, folder in repos.items():
                    prefix = f"/{repo}/resolve/main/"
                    if self.path.startswith(prefix) and (folder / self.path[len(prefix) :]).is_file():
                        return (folder / self.path[len(prefix) :]).read_bytes()
                return None

            def _answer(self, body: bytes | None, kind: str = "application/octet-stream", head: bool = False):
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                import hashlib

                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802
                hub.requests.append(("HEAD", self.path))
                self._answer(self._file(), head=True)

            def do_GET(self):  # noqa: N802
                hub.requests.append(("GET", self.path))
                path = self.path.split("?")[0]
                if path.startswith("/api/models/"):
                    repo = path.removeprefix("/api/models/")
                    if repo not in repos:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "RepoNotFound")
                        self.end_headers()
                        return
                    siblings = [{"rfilename": p.name, "size": p.stat().st_size} for p in sorted(repos[repo].iterdir())]
                    body = json.dumps({"id": repo, "sha": commit, "siblings": siblings}).encode()
                    self._answer(body, "application/json")
                    return
                self._answer(self._file())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # a free port
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def downloaded(self) -> set[str]:
        return {path.rsplit("/", 1)[-1] for method, path in self.requests if method == "GET" and "/resolve/" in path}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_download_fetches_only_the_files_read_and_then_works_offline(tmp_path):
    import os

    repo = write_model(tmp_path / "repo", "bert")
    (repo / "README.md").write_text("a model card")
    (repo / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n(S'exit 3'\ntR.")  # a pickle: never fetched
    (repo / "tf_model.h5").write_bytes(b"never fetched either")
    pickled = tmp_path / "pickled"
    write_model(pickled, "bert")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    hub_server = FakeHub({"someone/tiny-bert": repo, "someone/pickled": pickled})
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
        env.update(HF_HOME=str(tmp_path / "home"), HF_ENDPOINT=hub_server.endpoint, HF_HUB_DISABLE_TELEMETRY="1")
        done = cli("predict", "The cat sat on the [MASK].", "--model", "someone/tiny-bert", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert hub_server.downloaded() == {"config.json", "model.safetensors", "tokenizer.json"}
        assert "Downloading model.safetensors" in done.stderr and "needs about" in done.stderr
        refs = tmp_path / "home" / "hub" / "models--someone--tiny-bert" / "refs" / "main"
        assert refs.read_text() == COMMIT  # how the cache finds it again
        offline = cli(
            "predict",
            "The cat sat on the [MASK].",
            "--model",
            "someone/tiny-bert",
            "--json",
            env={**env, "HF_HUB_OFFLINE": "1"},
        )
        assert offline.returncode == 0, offline.stderr
        assert offline.stdout == done.stdout
        # A repository with only pickled weights is refused from its file list: nothing of it is fetched.
        before = len(hub_server.requests)
        refused = cli("predict", "a [MASK].", "--model", "someone/pickled", env=env)
        assert refused.returncode == 2 and "a pickle, which can run code" in refused.stderr
        assert not [path for _, path in hub_server.requests[before:] if "/resolve/" in path]
        missing = cli("predict", "a [MASK].", "--model", "someone/nothing", env=env)
        assert missing.returncode == 2 and "is not a model on the Hugging Face Hub" in missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1
    finally:
        hub_server.close()
