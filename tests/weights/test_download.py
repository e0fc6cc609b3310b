"""`weights="<tag>"` end to end against an HTTP server on 127.0.0.1 that the test starts.

The registry is swapped for rows that point at the test server (through
SE_KERAS_WEIGHTS_MIRROR, the variable an air-gapped cluster would set), and
KERAS_HOME points at a temporary folder, so nothing is fetched from or
written to the real places.
"""

import hashlib
import http.server
import pathlib
import threading

import numpy as np
import pytest
from safetensors.numpy import save_file

from se_keras.applications import SEResNet18
from se_keras.applications import SEResNet50
from se_keras.preprocessing import get_preprocessing
from se_keras.weights import download
from se_keras.applications import from_timm
from se_keras.weights import registry
from se_keras.weights.loading import converted_path
from se_keras.weights.timm_converter import ConversionError
from tests.weights import checkpoint_generator as gen

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures"


class _Server:
    """Serves a folder the way the Hugging Face hub does: `/resolve/<file>`
    answers 302 (with the X-Linked-Etag header when `etag` is set) to the
    file itself. It can also lie about Content-Length."""

    def __init__(self, root):
        server = self
        self.etag = None
        self.extra_length = 0
        self.requests = 0

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def send_header(self, keyword, value):
                if keyword == "Content-Length" and server.extra_length and value != "0":
                    value = str(int(value) + server.extra_length)
                super().send_header(keyword, value)

            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests += 1
                if self.path.startswith("/resolve/"):
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/resolve"):])
                    if server.etag:
                        self.send_header("X-Linked-Etag", f'"{server.etag}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    """A legacy_seresnet18 checkpoint (seeded random, timm's key layout)."""
    keys_shapes, stats, _, meta = gen.load_fixture(FIXTURES / "timm" / "legacy_seresnet18.npz")
    state = gen.generate(keys_shapes, meta["seed"], meta["residual_bn"], stats)
    path = tmp_path_factory.mktemp("source") / "legacy_seresnet18.test_in1k.safetensors"
    save_file(state, str(path))
    return path


@pytest.fixture
def server(tmp_path, checkpoint_file, monkeypatch):
    root = tmp_path / "served"
    root.mkdir()
    (root / checkpoint_file.name).write_bytes(checkpoint_file.read_bytes())
    srv = _Server(root)
    monkeypatch.setenv(registry.MIRROR_ENV, f"{srv.url}/resolve")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    yield srv, root
    srv.stop()


def _use_rows(monkeypatch, *rows):
    monkeypatch.setattr(registry, "CHECKPOINTS", rows)


def _row(sha256=None, url="https://example.invalid/unused.safetensors", tag="test_in1k"):
    return registry.Checkpoint(
        "seresnet18", tag, "legacy", f"legacy_seresnet18.{tag}", url, 70.0, 11_778_592,
        sha256=sha256,
    )


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _cache_files():
    return sorted(p.name for p in download.cache_dir().iterdir())


def test_download_verify_convert_then_cache_only(server, checkpoint_file, monkeypatch):
    srv, _ = server
    _use_rows(monkeypatch, _row(sha256=_sha256(checkpoint_file)))
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype("float32")
    reference = from_timm("legacy_seresnet18", checkpoint_file)(x)

    model = SEResNet18(weights="imagenet")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference), atol=1e-6)
    record = get_preprocessing(model)
    assert record.weights == "seresnet18.test_in1k"
    assert record.mean == registry.IMAGENET_MEAN and record.interpolation == "bicubic"  # the row's
    converted = converted_path(registry.CHECKPOINTS[0])
    assert converted.name == f"seresnet18.test_in1k-{_sha256(checkpoint_file)[:8]}.weights.h5"
    assert _cache_files() == ["legacy_seresnet18.test_in1k.safetensors", converted.name]
    assert srv.requests == 2  # the redirect and the file

    srv.stop()  # the second call must read only local files
    again = SEResNet18(weights="test_in1k")
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))
    notop = SEResNet18(weights="test_in1k", include_top=False, pooling="avg")
    assert notop.output.shape == (None, 512)
    assert converted_path(registry.CHECKPOINTS[0], include_top=False).name in _cache_files()
    assert srv.requests == 2


def test_a_damaged_cached_file_is_downloaded_again(server, checkpoint_file, monkeypatch):
    srv, _ = server
    _use_rows(monkeypatch, _row(sha256=_sha256(checkpoint_file)))
    SEResNet18(weights="imagenet", include_top=False)
    cached = download.cache_dir() / checkpoint_file.name
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated on disk later
    converted_path(registry.CHECKPOINTS[0]).unlink(missing_ok=True)
    with pytest.warns(UserWarning, match="no longer matches its sha256"):
        model = SEResNet18(weights="imagenet")
    assert srv.requests == 4
    assert _sha256(cached) == _sha256(checkpoint_file)
    assert get_preprocessing(model).weights == "seresnet18.test_in1k"


def test_wrong_hash_is_an_error_and_leaves_the_cache_clean(server, monkeypatch):
    _use_rows(monkeypatch, _row(sha256="0" * 64))
    with pytest.raises(download.WeightsDownloadError, match=r"expected sha256 0{64}.*received a file of \d+ bytes with sha256 [0-9a-f]{64}"):
        SEResNet18(weights="imagenet")
    assert _cache_files() == []


def test_corrupted_file_is_an_error_and_leaves_the_cache_clean(server, checkpoint_file, monkeypatch):
    _, root = server
    data = bytearray(checkpoint_file.read_bytes())
    data[100:200] = b"\xff" * 100  # corrupt the safetensors header
    (root / checkpoint_file.name).write_bytes(bytes(data))
    good_hash = _sha256(checkpoint_file)
    _use_rows(monkeypatch, _row(sha256=good_hash))
    with pytest.raises(download.WeightsDownloadError, match=f"expected sha256 {good_hash}"):
        SEResNet18(weights="imagenet")
    assert _cache_files() == []
    # Without a known hash the tensor check catches it.
    _use_rows(monkeypatch, _row(sha256=None))
    with pytest.warns(UserWarning, match="No sha256 is known"):
        with pytest.raises(ValueError, match="Cannot read checkpoint"):
            SEResNet18(weights="imagenet")
    assert _cache_files() == []


def test_truncated_download(server, monkeypatch):
    srv, _ = server
    srv.extra_length = 1000  # the server promises more bytes than it sends
    _use_rows(monkeypatch, _row(sha256=None))
    with pytest.raises(download.WeightsDownloadError, match=r"truncated: expected \d+ bytes"):
        SEResNet18(weights="imagenet")
    assert _cache_files() == []


def test_hub_etag_is_checked_when_the_registry_has_no_hash(server, checkpoint_file, monkeypatch):
    srv, _ = server
    _use_rows(monkeypatch, _row(sha256=None))
    srv.etag = "1" * 64
    with pytest.raises(download.WeightsDownloadError, match="X-Linked-Etag"):
        SEResNet18(weights="imagenet")
    assert _cache_files() == []
    srv.etag = _sha256(checkpoint_file)
    model = SEResNet18(weights="imagenet", include_top=False)
    assert get_preprocessing(model).weights == "seresnet18.test_in1k"


def test_torch_hub_hash_prefix_and_the_tensor_check(server, monkeypatch):
    """A .pth whose name carries its sha256 prefix: a wrong prefix fails the
    hash check; the right one passes it, but tensors that do not fit the
    model fail the conversion and nothing is cached."""
    _, root = server
    source = FIXTURES / "pth" / "zip_format.pth"
    prefix = _sha256(source)[:8]
    for name, error, message in [
        ("tiny-deadbeef.pth", download.WeightsDownloadError, "expected sha256 deadbeef"),
        (f"tiny-{prefix}.pth", ConversionError, "does not match"),
    ]:
        (root / name).write_bytes(source.read_bytes())
        row = _row(url=f"https://example.invalid/{name}")
        assert row.sha256_prefix == name[5:-4]
        _use_rows(monkeypatch, row)
        with pytest.raises(error, match=message):
            SEResNet18(weights="imagenet")
        assert _cache_files() == []


def test_no_server_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(registry.MIRROR_ENV, "http://127.0.0.1:9")  # discard port: refused
    _use_rows(monkeypatch, _row())
    with pytest.raises(download.WeightsDownloadError, match="SE_KERAS_WEIGHTS_MIRROR"):
        SEResNet18(weights="imagenet")


def test_a_tampered_mirror_copy_of_a_real_row_is_refused(server, checkpoint_file, monkeypatch):
    """The real seresnet50.ra2_in1k row, served by a mirror with 8 MiB of its
    tensors zeroed: the sha256 prefix in the release file name refuses it."""
    _, root = server
    row = registry.get("seresnet50", "ra2_in1k")
    assert row.sha256_prefix == "8efdb4bb"
    data = bytearray(8 << 20) + bytearray(checkpoint_file.read_bytes())
    (root / row.file_name).write_bytes(bytes(data))
    with pytest.raises(download.WeightsDownloadError,
                       match=r"expected sha256 8efdb4bb\.\.\. \(the sha256 prefix in the file name\)"):
        SEResNet50(weights="ra2_in1k", include_top=False)
    assert _cache_files() == []


def test_a_truncated_converted_cache_file_is_converted_again(server, checkpoint_file, monkeypatch):
    srv, _ = server
    _use_rows(monkeypatch, _row(sha256=_sha256(checkpoint_file)))
    x = np.random.default_rng(3).normal(size=(1, 64, 64, 3)).astype("float32")
    good = SEResNet18(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    converted = converted_path(registry.CHECKPOINTS[0], include_top=False)
    converted.write_bytes(converted.read_bytes()[:5000])
    with pytest.warns(UserWarning, match=r"test_in1k-[0-9a-f]{8}_notop.weights.h5.*Converting the checkpoint"):
        again = SEResNet18(weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(good(x)))
    assert srv.requests == 2  # re-converted from the cached checkpoint, not downloaded


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_a_broken_weights_file_is_named(tmp_path, content):
    from se_keras.weights.keras_files import WeightsFileError

    path = tmp_path / "broken.weights.h5"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=rf"weights file {path} \({len(content)} bytes\)"):
        SEResNet18(weights=str(path), include_top=False)
