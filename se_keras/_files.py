"""Writing files so that a crash never leaves a half-written one under the real name."""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix="", directory=False, replace=True):
    """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

    The temporary name starts with a dot (hidden from TF Serving's and most
    tools' scans) and lives in the same folder, so the final `os.replace`
    is atomic. On an exception the temporary file or folder is removed and
    `path` is untouched.

    Args:
        path: the final path.
        suffix: ending of the temporary name (Keras wants ".weights.h5").
        directory: create a temporary folder instead of a file.
        replace: with `directory`, whether a folder already at `path` is
            replaced. It is renamed away to a hidden name before the new one
            takes its place, so `path` never holds a mix of the two; False
            lets the final rename fail (an `OSError`) on a non-empty folder
            there. A file is always replaced.

    Example:
    >>> with atomic_path("/tmp/example.json") as tmp:
    ...     _ = tmp.write_text("{}")
    >>> with atomic_path("/tmp/example_folder", directory=True) as tmp:
    ...     _ = (tmp / "a.txt").write_text("a")
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        tmp = pathlib.Path(name)
    try:
        yield tmp
        if directory and replace and path.exists():
            _replace_directory(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _replace_directory(tmp, path):
    # os.replace cannot replace a non-empty folder: move the old one away
    # first. If the second rename fails, the old folder stays in the hidden
    # trash folder rather than being deleted.
    trash = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.rename(path, trash / path.name)
    os.rename(tmp, path)
    shutil.rmtree(trash, ignore_errors=True)


def write_json_atomically(path, data):
    """Writes `data` as JSON to `path` through `atomic_path`.

    Example:
    >>> write_json_atomically("/tmp/example.json", {"a": 1})
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def read_json(path, what="file", argument="file"):
    """A JSON file's content; invalid JSON is a ValueError that names the file.

    Args:
        path: the file.
        what: what the file is, for the message ("run config", "recipe").
        argument: the argument to name in "Received: argument=path".

    Example:
    >>> write_json_atomically("/tmp/example.json", {"a": 1})
    >>> read_json("/tmp/example.json")
    {'a': 1}
    """
    path = pathlib.Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"The {what} {path} is not valid JSON ({error}). Received: {argument}={str(path)!r}"
        ) from error
