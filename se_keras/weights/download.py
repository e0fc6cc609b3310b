"""Verified downloads into the Keras cache.

Written on urllib rather than `keras.utils.get_file` because get_file keeps
a fresh download whose hash is wrong on disk, cannot check the sha256
prefix that torch.hub-style file names carry, and does not expose the
response headers (Content-Length for truncation, the Hugging Face hub's
`X-Linked-Etag` sha256). Progress uses Keras' own `Progbar`.

A file reaches its cache name only after its size, its hash and its
tensors have checked out; until then it is a temporary file in the same
folder, removed on any failure.
"""

import hashlib
import http.client
import os
import pathlib
import re
import urllib.error
import urllib.request
import warnings

from se_keras._files import atomic_path
from se_keras.weights.readers import read_checkpoint

CHUNK = 1 << 20


class WeightsDownloadError(ValueError):
    """A download failed, was truncated, or did not match its expected hash."""


def cache_dir():
    """`$KERAS_HOME/models/se_keras` (KERAS_HOME defaults to ~/.keras), created if needed.

    Example:
    >>> cache_dir().name
    'se_keras'
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = pathlib.Path(home) / "models" / "se_keras"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _RecordingRedirects(urllib.request.HTTPRedirectHandler):
    """Keeps the headers of every redirect response.

    The Hugging Face hub answers `resolve/main/<file>` with a redirect to its
    CDN and puts the file's sha256 in that redirect's `X-Linked-Etag`
    header; the final response does not carry it.
    """

    def __init__(self):
        super().__init__()
        self.headers = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.headers.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url, target, progress):
    """Streams `url` into `target`; returns the headers of every response, last first."""
    redirects = _RecordingRedirects()
    opener = urllib.request.build_opener(redirects)
    try:
        response = opener.open(url, timeout=60)
    except (urllib.error.URLError, OSError) as error:
        raise WeightsDownloadError(
            f"Cannot download {url}: {error}. Without network access, put the "
            "file on a server you can reach and set SE_KERAS_WEIGHTS_MIRROR to "
            "its base URL, or pass a local checkpoint path as `weights`."
        ) from error
    with response:
        headers = response.headers
        total = int(headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            import keras

            bar = keras.utils.Progbar(total, unit_name="B")
        received = 0
        with open(target, "wb") as f:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as error:
                    raise WeightsDownloadError(
                        f"Download of {url} is truncated: expected {total} bytes "
                        f"(Content-Length), received {received} before: {error!r}."
                    ) from error
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(received)
    if total is not None and received != total:
        raise WeightsDownloadError(
            f"Download of {url} is truncated: expected {total} bytes "
            f"(Content-Length), received {received}."
        )
    return [headers, *reversed(redirects.headers)]


def _expected_hash(checkpoint, headers=()):
    """(hash, how it is known) to check, or (None, None)."""
    if checkpoint.sha256:
        return checkpoint.sha256, "the registry's sha256"
    if checkpoint.sha256_prefix:
        return checkpoint.sha256_prefix, "the sha256 prefix in the file name"
    for response in headers:
        etag = (response.get("X-Linked-Etag") or "").strip('"')
        if re.fullmatch(r"[0-9a-f]{64}", etag):
            return etag, "the sha256 the Hugging Face hub reports (X-Linked-Etag)"
    return None, None


def _cached(destination, checkpoint, check):
    """`check(destination)` for a cached file, or None if the file is unusable.

    A cached file was verified when it was downloaded, but disks and hands
    change files: one whose known hash no longer matches, or that fails the
    check, is removed so that the caller downloads it again.
    """
    expected, _ = _expected_hash(checkpoint)
    if expected and not _sha256(destination).startswith(expected):
        warnings.warn(f"{destination} no longer matches its sha256; downloading it again.",
                      stacklevel=3)
        destination.unlink()
        return None
    try:
        return (check(destination),)
    except Exception as error:  # noqa: BLE001 - any failure means "download again"
        warnings.warn(f"{destination} is unusable ({error}); downloading it again.", stacklevel=3)
        destination.unlink()
        return None


def fetch(checkpoint, check=read_checkpoint, progress=True):
    """Downloads a registry checkpoint into the cache, unless it is there.

    Args:
        checkpoint: a `registry.Checkpoint`.
        check: called with the file's path after its size and hash are
            verified and before it gets its cache name; it must raise if the
            file's tensors are unusable (the loader converts them into the
            model here). Its result is returned.
        progress: show a progress bar.

    Returns:
        `(path, check(path))`, `path` in `cache_dir()`.

    Raises:
        WeightsDownloadError: the download failed, was truncated or its hash
            did not match; nothing is left in the cache.
        Whatever `check` raises, also leaving nothing in the cache.

    Example:
    >>> from se_keras.weights import registry
    >>> path, state = fetch(registry.get("seresnet50", "imagenet"))  # doctest: +SKIP
    """
    destination = cache_dir() / checkpoint.file_name
    if destination.exists():
        result = _cached(destination, checkpoint, check)
        if result is not None:
            return destination, result[0]
    url = checkpoint.resolved_url()
    with atomic_path(destination, suffix=".part") as tmp:
        headers = _download(url, tmp, progress)
        expected, source = _expected_hash(checkpoint, headers)
        actual = _sha256(tmp)
        if expected is None:
            warnings.warn(
                f"No sha256 is known for {checkpoint.name} ({url}); the file is "
                "checked only by reading its tensors and converting them. "
                f"Its sha256 is {actual}.",
                stacklevel=3,
            )
        elif not actual.startswith(expected):
            raise WeightsDownloadError(
                f"Download of {url} failed verification: expected sha256 "
                f"{expected}{'...' if len(expected) < 64 else ''} ({source}), "
                f"received a file of {tmp.stat().st_size} bytes with sha256 "
                f"{actual}. The file was discarded."
            )
        result = check(tmp)
    return destination, result
