"""Downloads against a local HTTP server on 127.0.0.1: complete, truncated, stalled, HTML, not a zip, malicious."""
import http.server
import io
import threading
import time
import zipfile

import pytest

import helpers
from conftest import face_like
from facegan.errors import DownloadError
from facegan.download import download, ensure_udacity_data, safe_extract


def make_zip(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def jpeg(seed):
    import numpy as np
    buffer = io.BytesIO()
    face_like(np.random.default_rng(seed)).save(buffer, format="JPEG")
    return buffer.getvalue()


GOOD = make_zip({f"processed_celeba_small/celeba/New Folder With Items/{i:06d}.jpg": jpeg(i) for i in range(1, 6)}
                | {"processed_celeba_small/celeba/New Folder With Items/.DS_Store": b"junk"})
EVIL = make_zip({"processed_celeba_small/a.jpg": jpeg(1), "../../escaped.txt": b"gotcha"})


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        routes = {
            "/good.zip": ("application/zip", GOOD, len(GOOD)),
            "/evil.zip": ("application/zip", EVIL, len(EVIL)),
            "/truncated.zip": ("application/zip", GOOD[:len(GOOD) // 2], len(GOOD)),
            "/page.zip": ("text/html", b"<html>please log in</html>", 26),
            "/notzip.zip": ("application/octet-stream", b"x" * 100, 100),
        }
        if self.path == "/stall.zip":
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            time.sleep(3)
            return
        if self.path not in routes:
            self.send_error(404)
            return
        kind, body, length = routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_get_data_downloads_extracts_and_then_skips(server, tmp_path, monkeypatch):
    data_dir = tmp_path / "processed_celeba_small"
    assert helpers.get_data(str(data_dir), url=f"{server}/good.zip") == str(data_dir)
    files = sorted(p.name for p in (data_dir / "celeba" / "New Folder With Items").iterdir())
    assert files == [".DS_Store"] + [f"{i:06d}.jpg" for i in range(1, 6)]
    assert not (tmp_path / "processed-celeba-small.zip").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["processed_celeba_small"]  # no leftovers
    # already there: nothing is fetched (a URL that fails proves it)
    assert helpers.get_data(str(data_dir), url=f"{server}/missing") == str(data_dir)


@pytest.mark.parametrize("route, message", [
    ("truncated.zip", "stopped after"),
    ("page.zip", "text/html page, not a zip"),
    ("notzip.zip", "not a zip file"),
    ("missing.zip", "404"),
])
def test_bad_downloads_leave_nothing_behind(server, tmp_path, route, message):
    with pytest.raises(DownloadError, match=message) as info:
        download(f"{server}/{route}", tmp_path / "d.zip", progress=False)
    assert "by hand" in str(info.value) or "try again" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out(server, tmp_path):
    with pytest.raises(DownloadError, match="stalled"):
        download(f"{server}/stall.zip", tmp_path / "d.zip", timeout=0.5, progress=False)


def test_offline_gives_one_clear_message(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    with pytest.raises(DownloadError) as info:
        ensure_udacity_data(tmp_path / "processed_celeba_small", url=f"http://127.0.0.1:{port}/x.zip", timeout=2,
                            progress=False)
    message = str(info.value)
    assert "offline?" in message and "by hand" in message and "data_dir='synthetic'" in message
    assert "\n" not in message


def test_only_https_elsewhere(tmp_path):
    with pytest.raises(DownloadError, match="only https"):
        download("http://example.com/data.zip", tmp_path / "d.zip")
    with pytest.raises(DownloadError, match="only https"):
        download("file:///etc/passwd", tmp_path / "d.zip")


def test_malicious_zip_is_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="would land outside"):
        ensure_udacity_data(tmp_path / "processed_celeba_small", url=f"{server}/evil.zip", progress=False)
    assert not (tmp_path.parent / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("name", ["/etc/evil", "a/../../evil", "C:/evil"])
def test_safe_extract_refuses_escaping_entries(tmp_path, name):
    (tmp_path / "z.zip").write_bytes(make_zip({name: b"x"}))
    with pytest.raises(DownloadError, match="outside"):
        safe_extract(tmp_path / "z.zip", tmp_path / "target")


def test_safe_extract_refuses_symlinks(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    (tmp_path / "z.zip").write_bytes(buffer.getvalue())
    with pytest.raises(DownloadError, match="symbolic link"):
        safe_extract(tmp_path / "z.zip", tmp_path / "target")
