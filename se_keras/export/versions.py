"""Version folders: the layout TF Serving watches, and publishing a version whole.

Layout (what TF Serving's file system source watches: one folder per model,
one integer-named subfolder per version, the highest one served):

    BASE/
      1/
        saved_model.pb
        variables/
        assets.extra/
          tf_serving_warmup_requests   warm-up requests, replayed at load
          se_keras_export.json         how the export was made (preprocessing, keys)

A version is written under a hidden temporary name in BASE (which TF
Serving ignores: it only loads integer names) and renamed when complete
(`se_keras._files.atomic_path`), so a half-written version is never seen.
"""

import contextlib
import json
import os
import pathlib

from se_keras._files import atomic_path
from se_keras.export.warmup import WARMUP_DIR

METADATA_FILE = "se_keras_export.json"


def next_version(export_base):
    """The version number after the highest integer-named folder in `export_base` (1 if none).

    Example:
    >>> next_version("/nonexistent/models/se_resnet50")
    1
    """
    base = pathlib.Path(export_base)
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if (
        base.is_dir()) else []
    return max(versions, default=0) + 1


def latest_version_dir(export_base):
    """The folder TF Serving's default policy serves: the highest integer-named version.

    `export_base` may also be a version folder itself (one holding
    saved_model.pb).

    Example:
    >>> latest_version_dir("models/se_resnet50")  # doctest: +SKIP
    PosixPath('models/se_resnet50/3')
    """
    base = pathlib.Path(export_base)
    if (base / "saved_model.pb").exists():
        return base
    if not base.is_dir():
        raise ValueError(f"No such export folder. Received: export_base={str(export_base)!r}")
    versions = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise ValueError(
            "No integer-named version folder in the export base. "
            f"Received: export_base={str(export_base)!r}"
        )
    return max(versions, key=lambda p: int(p.name))


def new_version_dir(export_base, version=None, overwrite=False):
    """The folder a new version goes to: `export_base/<version>` (the next one by default).

    Creates `export_base`; refuses an existing version unless `overwrite`.

    Example:
    >>> new_version_dir("/tmp/models/example").name  # doctest: +SKIP
    '1'
    """
    base = pathlib.Path(export_base)
    base.mkdir(parents=True, exist_ok=True)
    version = version or next_version(base)
    final = base / str(version)
    if final.exists() and not overwrite:
        raise ValueError(
            f"Version {version} already exists in {base}; pass overwrite=True or another "
            f"version. Received: version={version}"
        )
    return final


@contextlib.contextmanager
def publishing(final, overwrite=False):
    """Yields a hidden temporary folder beside `final` that becomes `final` when the block succeeds.

    The folder is made readable by all first. With `overwrite`, a version
    already at `final` is replaced whole; without, a version that another
    export wrote there meanwhile is a ValueError. On an exception nothing
    is left behind.

    Example:
    >>> with publishing(new_version_dir("/tmp/models/example", overwrite=True),  # doctest: +SKIP
    ...                 overwrite=True) as tmp:
    ...     _ = (tmp / "saved_model.pb").write_bytes(b"")
    """
    written = False
    try:
        with atomic_path(final, directory=True, replace=overwrite) as tmp:
            yield tmp
            _make_readable(tmp)
            written = True
    except OSError as error:
        if not written or overwrite:
            raise
        raise ValueError(
            f"Could not move the export into place ({error}); did another export write "
            f"this version at the same time? Received: version={final.name}"
        ) from error


def _make_readable(folder):
    # mkdtemp and mkstemp create owner-only folders and files; a TF Serving
    # container often runs as another user than the one who exported.
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def read_metadata(version_dir):
    """The `se_keras_export.json` of an export (an empty dict for other SavedModels).

    Example:
    >>> read_metadata("models/se_resnet50/1")["preprocessing"]["size"]  # doctest: +SKIP
    224
    """
    path = pathlib.Path(version_dir) / WARMUP_DIR / METADATA_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
