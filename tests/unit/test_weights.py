"""isearchd.models.weights: cache, download (against a local HTTP server), import."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from isearchd.config import settings
from isearchd.errors import ModelError, NotFound, WeightsMissing
from isearchd.models import importer, weights
from isearchd.models.registry import arch_config, get_spec

KEY = "ViT-8Y"
FILE_NAME = get_spec(KEY).file_name
PAYLOAD = np.random.default_rng(7).bytes(3 * weights.CHUNK_BYTES + 12345)  # several chunks


# ---------------------------------------------------------------- a local file server


@dataclass
class ServerState:
    """What the server serves, how it misbehaves, and what it was asked."""

    files: dict[str, bytes]
    plan: list[str] = field(default_factory=list)  # one mode per coming request
    default: str = "ok"  # mode once the plan is used up
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)  # path, Range, status
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    """Modes: ok (honours Range), norange (ignores Range), drop / drop_norange (sends half the
    body, then closes), lie (a 206 claiming another total size), 404, 500."""

    server: FileServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            mode = state.plan.pop(0) if state.plan else state.default
        range_header = self.headers.get("Range")
        data = state.files.get(self.path.lstrip("/"))
        if mode in ("404", "500") or data is None:
            status = 500 if mode == "500" else 404
            self._record(range_header, status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and mode in ("ok", "drop", "lie") and int(match.group(1)) < len(data):
            start = int(match.group(1))
        body = data[start:]
        status = 206 if start else 200
        self._record(range_header, status)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            total = len(data) - 10 if mode == "lie" else len(data)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{total}")
        self.end_headers()
        if mode.startswith("drop"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _record(self, range_header: str | None, status: int) -> None:
        with self.server.state.lock:
            self.server.state.requests.append((self.path, range_header, status))


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture(autouse=True)
def no_proxy_fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setattr(weights, "BACKOFF_FIRST_S", 0.05)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    srv = FileServer(ServerState(files={FILE_NAME: PAYLOAD}))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, srv.base + "/")
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _assert_helpful(message: str, url: str) -> None:
    assert url in message
    assert str(weights.cache_file(KEY)) in message
    assert f"isearch model pull {KEY}" in message
    assert f"isearch model import {KEY} FILE" in message


# ---------------------------------------------------------------- cache and messages


def test_cache_location_and_missing_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(weights.WEIGHTS_URL_ENV, raising=False)
    path = weights.cache_file(KEY)
    assert path == settings.weights_cache_dir() / FILE_NAME
    assert not weights.is_cached(KEY)
    assert weights.download_url(KEY) == get_spec(KEY).url
    with pytest.raises(WeightsMissing) as info:
        weights.cached_path(KEY)
    _assert_helpful(info.value.message, get_spec(KEY).url)
    # the key is matched case-insensitively, messages use its real spelling
    assert weights.cache_file("vit-8y") == path
    with pytest.raises(ModelError, match="unknown model"):
        weights.cache_file("ViT-999")


def test_weights_url_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.WEIGHTS_URL_ENV, "http://mirror.example/tinyclip/")
    assert weights.download_url(KEY) == f"http://mirror.example/tinyclip/{FILE_NAME}"
    with pytest.raises(WeightsMissing) as info:
        weights.cached_path(KEY)
    assert f"http://mirror.example/tinyclip/{FILE_NAME}" in info.value.message


def test_default_time_budget_reports_within_30_seconds() -> None:
    # one last attempt may start just before the budget ends; it is capped by what is left
    assert weights.DEFAULT_MAX_TOTAL_S + 1.0 <= 30.0


# ---------------------------------------------------------------- pull


def test_pull_success_with_progress(server: FileServer) -> None:
    calls: list[tuple[int, int | None]] = []
    path = weights.pull(KEY, progress=lambda done, total: calls.append((done, total)))
    assert path == weights.cache_file(KEY)
    assert path.read_bytes() == PAYLOAD
    assert weights.is_cached(KEY)
    assert weights.cached_path(KEY) == path
    assert not path.with_name(path.name + ".part").exists()
    assert calls[0] == (0, len(PAYLOAD))
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) >= 4  # one per chunk
    assert server.state.requests == [(f"/{FILE_NAME}", None, 200)]


def test_resume_after_dropped_connection(server: FileServer) -> None:
    server.state.plan = ["drop", "ok"]
    calls: list[tuple[int, int | None]] = []
    path = weights.pull(KEY, progress=lambda done, total: calls.append((done, total)))
    assert path.read_bytes() == PAYLOAD
    (_, first_range, first_status), (_, second_range, second_status) = server.state.requests
    assert (first_range, first_status) == (None, 200)
    half = len(PAYLOAD) // 2
    assert second_range == f"bytes={half}-"
    assert second_status == 206
    assert (half, len(PAYLOAD)) in calls  # the resumed attempt starts where the first stopped
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_restart_when_server_ignores_range(server: FileServer) -> None:
    server.state.plan = ["drop", "norange"]
    path = weights.pull(KEY)
    assert path.read_bytes() == PAYLOAD
    assert [status for *_, status in server.state.requests] == [200, 200]
    assert server.state.requests[1][1] is not None  # asked to resume, got the whole file


def test_resume_a_part_left_by_an_earlier_pull(server: FileServer) -> None:
    part = weights.cache_file(KEY).with_name(FILE_NAME + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(PAYLOAD[:1000])
    assert weights.pull(KEY).read_bytes() == PAYLOAD
    assert server.state.requests == [(f"/{FILE_NAME}", "bytes=1000-", 206)]
    assert not part.exists()


def test_restart_when_remote_size_changes_between_attempts(server: FileServer) -> None:
    server.state.plan = ["drop", "lie", "ok"]
    assert weights.pull(KEY).read_bytes() == PAYLOAD
    ranges = [r for _, r, _ in server.state.requests]
    assert ranges[1] is not None
    assert ranges[2] is None  # the stale half was thrown away, not spliced


def test_404_is_final_at_once(server: FileServer) -> None:
    server.state.plan = ["404"]
    with pytest.raises(WeightsMissing) as info:
        weights.pull(KEY, max_total_s=20)
    assert len(server.state.requests) == 1  # no retries
    assert "HTTP 404" in info.value.message
    _assert_helpful(info.value.message, f"{server.base}/{FILE_NAME}")
    assert not weights.is_cached(KEY)


def test_retry_on_server_error(server: FileServer) -> None:
    server.state.plan = ["500", "500", "ok"]
    assert weights.pull(KEY).read_bytes() == PAYLOAD
    assert [status for *_, status in server.state.requests] == [500, 500, 200]


def test_short_body_is_never_cached(server: FileServer) -> None:
    # the server announces the full size but always closes half way and cannot resume
    server.state.default = "drop_norange"
    with pytest.raises(WeightsMissing) as info:
        weights.pull(KEY, max_total_s=1.0)
    assert f"of {len(PAYLOAD)} bytes" in info.value.message
    _assert_helpful(info.value.message, f"{server.base}/{FILE_NAME}")
    assert len(server.state.requests) >= 2  # retried first
    assert not weights.cache_file(KEY).exists()
    assert not weights.is_cached(KEY)


def test_unreachable_server_reports_within_budget() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{FILE_NAME}"
    with pytest.raises(WeightsMissing) as info:
        weights.pull(KEY, url=url, max_total_s=0.5)
    _assert_helpful(info.value.message, url)
    assert "cannot connect" in info.value.message
    assert not weights.is_cached(KEY)


def test_first_byte_budget_gives_up_soon_when_nothing_arrives() -> None:
    """`service start` downloads with a short first-byte budget: offline, the error comes fast."""
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{FILE_NAME}"
    started = time.monotonic()
    with pytest.raises(WeightsMissing) as info:
        weights.pull(KEY, url=url, max_total_s=20, first_byte_s=0.5)
    assert time.monotonic() - started < 5
    _assert_helpful(info.value.message, url)


def test_first_byte_budget_ends_once_data_flows(server: FileServer) -> None:
    # half the file arrives, then two server errors: a stall budget of 0.01 s would give up, but
    # once bytes have arrived the normal budget applies
    server.state.plan = ["drop", "500", "500", "ok"]
    assert weights.pull(KEY, max_total_s=10, first_byte_s=0.01).read_bytes() == PAYLOAD


def test_only_http_urls() -> None:
    with pytest.raises(WeightsMissing, match="only http"):
        weights.pull(KEY, url="file:///etc/passwd")


# ---------------------------------------------------------------- import


def _manual_checkpoint(path: Path, config: dict[str, object], seed: int = 0) -> Path:
    """A random open_clip CLIP saved in TinyCLIP's manual checkpoint layout."""
    torch = pytest.importorskip("torch")
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(embed_dim=config["embed_dim"], vision_cfg=config["vision_cfg"], text_cfg=config["text_cfg"])
    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("visual."):
            state[f"_image_encoder.module.{name}"] = tensor
        elif name == "logit_scale":
            state["_logit_scale.module.logit_scale"] = tensor
        else:
            state[f"_text_encoder.module.{name}"] = tensor
    torch.save({"state_dict": state}, path)
    return path


@pytest.fixture(scope="module")
def vit8y_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "my-download.pt"
    return _manual_checkpoint(path, arch_config(get_spec(KEY).arch))


def test_import_right_architecture(vit8y_checkpoint: Path) -> None:
    target = importer.import_weights(KEY, vit8y_checkpoint)
    assert target == weights.cache_file(KEY)
    assert target.read_bytes() == vit8y_checkpoint.read_bytes()
    assert weights.is_cached(KEY)
    # no temporary left; the check was the export, made for these bytes, so the daemon starts at once
    assert sorted(p.name for p in target.parent.iterdir()) == [FILE_NAME, "onnx"]
    from isearchd.models.backend import export_cached
    from isearchd.models.resolve import resolve

    assert export_cached(resolve(KEY), "fp32")
    from isearchd.models import load_model

    model = load_model(KEY)  # now from the cache
    assert model.dim == 512


def test_import_wrong_architecture_refused(tmp_path: Path, vit8y_checkpoint: Path) -> None:
    tiny = {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
    }
    other = _manual_checkpoint(tmp_path / "other.pt", tiny)
    with pytest.raises(ModelError) as info:
        importer.import_weights(KEY, other)
    assert str(other) in info.value.message
    assert not weights.is_cached(KEY)
    # a real ViT-8Y file is not a ViT-39Y either
    with pytest.raises(ModelError) as info:
        importer.import_weights("ViT-39Y", vit8y_checkpoint)
    assert str(vit8y_checkpoint) in info.value.message
    assert not weights.is_cached("ViT-39Y")
    cache = settings.weights_cache_dir()
    # nothing copied, no temporary and no export left: only the stamps of the files' hashes
    left = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.parent.name != "stamps")
    assert left in ([], ["onnx", "onnx/stamps"])


def test_import_broken_files_refused(tmp_path: Path, vit8y_checkpoint: Path) -> None:
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(vit8y_checkpoint.read_bytes()[: 1 << 20])
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    for bad in (truncated, text):
        with pytest.raises(ModelError) as info:
            importer.import_weights(KEY, bad)
        assert str(bad) in info.value.message
    assert not weights.is_cached(KEY)
    with pytest.raises(NotFound):
        importer.import_weights(KEY, tmp_path / "missing.pt")
