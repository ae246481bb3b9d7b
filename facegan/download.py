"""Getting the Udacity face crops: a checked download and a safe extraction.

Only https is used (plain http is accepted for loopback addresses alone, for tests); the transfer goes to a
temporary file that becomes the zip only once it is complete and every entry's checksum is verified, and
extraction refuses entries that would land outside the target folder.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from .errors import DownloadError

UDACITY_URL = ("https://s3.amazonaws.com/video.udacity-data.com/topher/2018/November/"
               "5be7eb6f_processed-celeba-small/processed-celeba-small.zip")
BY_HAND = ("download processed-celeba-small.zip by hand from " + UDACITY_URL + " and unzip it here (or pass the "
           "zip itself as data_dir); data_dir='synthetic' works offline")


def _check_url(url: str) -> None:
    parts = urllib.parse.urlparse(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise DownloadError(f"refusing to download from '{url}': only https URLs are used")


def download(url: str, dest: str | os.PathLike, *, timeout: float = 30, progress: bool = True) -> Path:
    """Fetch a zip to ``dest`` (atomically) and verify it. Raises DownloadError with a one-line reason."""
    _check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _fetch(url, f, timeout, progress)
        _verify_zip(Path(tmp), url)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _fetch(url, f, timeout, progress):
    from tqdm.auto import tqdm
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind in ("text/html", "application/xhtml+xml"):
                raise DownloadError(f"'{url}' answered with a {kind} page, not a zip (a login or error page?): "
                                    + BY_HAND)
            expected = int(response.headers.get("Content-Length") or 0)
            received = 0
            with tqdm(total=expected or None, unit="B", unit_scale=True, desc="downloading",
                      disable=not progress, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except DownloadError:
        raise
    except (socket.timeout, TimeoutError) as e:
        raise DownloadError(f"the download from '{url}' stalled ({e}): try again later, or " + BY_HAND) from None
    except urllib.error.HTTPError as e:
        raise DownloadError(f"the server refused the download ({e.code} {e.reason}): " + BY_HAND) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not download the data (offline? {reason}): " + BY_HAND) from None
    if expected and received != expected:
        raise DownloadError(f"the download stopped after {received} of {expected} bytes: try again, or " + BY_HAND)


def _verify_zip(path: Path, url: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"what '{url}' sent is not a zip file ({e}): " + BY_HAND) from None
    if bad is not None:
        raise DownloadError(f"the downloaded zip is damaged (entry '{bad}' fails its checksum): try again")


def safe_extract(zip_path: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a zip into ``target``, refusing absolute paths, '..' entries and symbolic links."""
    target = Path(target).resolve()
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            name = info.filename
            if name.startswith(("/", "\\")) or ":" in name.split("/")[0] or ".." in Path(name).parts:
                raise DownloadError(f"refusing to extract '{zip_path}': entry '{name}' would land outside "
                                    f"'{target}'")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DownloadError(f"refusing to extract '{zip_path}': entry '{name}' is a symbolic link")
            if not (target / name).resolve().is_relative_to(target):
                raise DownloadError(f"refusing to extract '{zip_path}': entry '{name}' would land outside "
                                    f"'{target}'")
        target.mkdir(parents=True, exist_ok=True)
        archive.extractall(target)
    return target


def ensure_udacity_data(data_dir: str | os.PathLike = "processed_celeba_small/", *, url: str = UDACITY_URL,
                        timeout: float = 30, progress: bool = True) -> Path:
    """Make sure the Udacity face crops are in ``data_dir``: nothing is fetched when images are already there;
    otherwise the zip is downloaded beside it, verified, extracted safely and removed."""
    from .data import find_images
    from .errors import DataError
    data_dir = Path(data_dir)
    try:
        find_images(data_dir)
        return data_dir
    except DataError:
        pass
    parent = data_dir.resolve().parent
    zip_path = download(url, parent / "processed-celeba-small.zip", timeout=timeout, progress=progress)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=parent))
    try:
        safe_extract(zip_path, staging)
        # the zip holds processed_celeba_small/...; move that folder (or everything) to data_dir
        inner = staging / "processed_celeba_small"
        source = inner if inner.is_dir() else staging
        if data_dir.exists():
            shutil.rmtree(data_dir) if data_dir.is_dir() else data_dir.unlink()
        shutil.move(str(source), str(data_dir))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        zip_path.unlink(missing_ok=True)
    find_images(data_dir)
    return data_dir
