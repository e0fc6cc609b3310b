"""The image-folder source: held-out validation per class, bad files named or skipped."""

import logging
import pathlib

import pytest

from se_keras import cli
from se_keras.data import get_source


def test_folder_holdout_per_class(small_cifar):
    source = get_source(f"folder:{small_cifar}", val_split="2")
    assert source.num_classes == 10
    assert source.train.num_examples == 40 and source.validation.num_examples == 20
    # The held-out images are the last two of each class (sorted names).
    val_names = {pathlib.Path(p).name for p in source.validation.paths}
    assert val_names == {"0004.jpg", "0005.jpg"}
    fraction = get_source(f"folder:{small_cifar}", val_split="0.5")
    assert fraction.validation.num_examples == 30
    with pytest.raises(ValueError, match="every example of class"):
        get_source(f"folder:{small_cifar}", val_split="6")


def test_bad_files_are_named_or_skipped(small_cifar, tmp_path, caplog):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(small_cifar, folder)
    corrupt = folder / "cat" / "broken.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    notes = folder / "dog" / "notes.txt"
    notes.write_text("labels")
    (folder / "dog" / ".DS_Store").write_bytes(b"\0\0")  # hidden: ignored
    with pytest.raises(ValueError, match=r"broken\.jpg is not a JPEG, PNG, GIF or BMP image"):
        get_source(f"folder:{folder}")
    corrupt.unlink()
    with pytest.raises(ValueError, match=r"notes\.txt is not an image file"):
        get_source(f"folder:{folder}")
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")  # a JPEG header, then garbage
    notes.unlink()
    with pytest.raises(ValueError, match=r"broken\.jpg is not decodable"):
        get_source(f"folder:{folder}", verify_images=True)
    notes.write_text("labels")
    with caplog.at_level(logging.WARNING):
        source = get_source(f"folder:{folder}", skip_bad_files=True, verify_images=True,
                            val_split="none")
    assert source.train.num_examples == 60
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text
    # The command line reports the same error without a traceback.
    assert cli.main(["data", "to-tfrecords", str(folder), str(tmp_path / "out")]) == 2
