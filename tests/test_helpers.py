"""helpers.py offline: parameters from the environment, the download against a local server, the pictures."""
import http.server
import io
import threading
import time
import zipfile

import pytest
import torch

import helpers
from conftest import face_like
from facegan.download import DownloadError, download, ensure_udacity_data, safe_extract


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


def test_get_data_passes_other_paths_through(tmp_path):
    assert helpers.get_data("synthetic") == "synthetic"
    assert helpers.get_data(str(tmp_path)) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir='synthetic'"):
        helpers.get_data(str(tmp_path / "my_faces"))


def test_env_parameters(monkeypatch):
    monkeypatch.setenv("FACEGAN_N_EPOCHS", "3")
    monkeypatch.setenv("FACEGAN_LR", "0.001")
    monkeypatch.setenv("FACEGAN_DATA_DIR", "synthetic")
    assert helpers.env("N_EPOCHS", 20) == 3
    assert helpers.env("LR", 0.0002) == 0.001
    assert helpers.env("DATA_DIR", "x") == "synthetic"
    assert helpers.env("SEED", 7) == 7
    monkeypatch.setenv("FACEGAN_SEED", "seven")
    with pytest.raises(ValueError, match="FACEGAN_SEED='seven' is not a valid int"):
        helpers.env("SEED", 0)


def test_pictures(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image
    from facegan.models import Generator
    samples = [torch.rand(16, 3, 32, 32) * 2 - 1 for _ in range(3)]
    assert helpers.view_samples(-1, samples).axes[0].get_title() == "Generated samples, epoch 3"
    fig = helpers.plot_losses([(1.0 + i % 3, 0.5) for i in range(200)])
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 and len(lines[1].get_ydata()) == 200  # raw and smoothed, per network
    assert helpers.show_batch(torch.rand(8, 3, 32, 32)) is not None
    walk = helpers.interpolation_grid(Generator(10, 8), 10, rows=3, steps=5)
    assert walk.shape == (15, 3, 32, 32)
    path = helpers.animate_samples(samples, str(tmp_path / "a.gif"))
    with Image.open(path) as gif:
        assert gif.n_frames == 3
    plt.close("all")


def test_estimate_epoch_seconds():
    from facegan import TrainConfig
    seconds = helpers.estimate_epoch_seconds(TrainConfig(batch_size=16, d_conv_dim=8, g_conv_dim=8), 1600)
    assert 0 < seconds < 600
