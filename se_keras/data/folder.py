"""The image-folder source: one subfolder of JPEG/PNG/GIF/BMP files per class.

Every file is checked as it is listed (its extension and first bytes, and
with `verify_images` a full decode), so a stray or broken file is an error
that names it before training starts, or is skipped with a warning.

Example:
>>> source = folder_source("photos", val_split="0.1")  # doctest: +SKIP
>>> source.class_names  # doctest: +SKIP
['cat', 'dog']
"""

import logging
import os
import pathlib

import numpy as np

from se_keras.data.arrays import ArraySplit
from se_keras.data.splits import holdout_indices
from se_keras.data.splits import parse_holdout
from se_keras.data.splits import Source

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# First bytes of each accepted format (JPEG, PNG, GIF, BMP).
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _sniff(path):
    """None if the file looks like an image, else why not."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file (extension {path.suffix or 'none'!r}; expected one of " \
               f"{', '.join(IMAGE_EXTENSIONS)})"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as error:
        return f"unreadable ({error})"
    if not head:
        return "empty file"
    if not head.startswith(_MAGIC):
        return f"not a JPEG, PNG, GIF or BMP image (it starts with {head[:8]!r})"
    return None


def _verify(path):
    """Fully decodes an image with Pillow; None if it decodes, else the error."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as error:  # Pillow raises many types for broken files.
        return f"not decodable ({error})"
    return None


def list_image_folder(root, skip_bad_files=False, verify_images=False):
    """Lists a folder of class subfolders: (paths, labels, class_names).

    Class names are the sorted subfolder names; files are found recursively
    inside each class folder and sorted. Hidden files are ignored. Every
    other file must be an image: its extension and first bytes are checked
    (and with `verify_images` it is decoded with Pillow), and a file that
    fails raises an error naming it, or is skipped with a warning when
    `skip_bad_files` is set.

    Args:
        root: the folder.
        skip_bad_files: warn and skip instead of raising.
        verify_images: decode every image (slow; catches truncated files).

    Returns:
        `(paths, labels, class_names)`.

    Raises:
        ValueError: no class subfolders, no images, or a bad file.

    Example:
    >>> paths, labels, names = list_image_folder("photos")  # doctest: +SKIP
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"The image folder does not exist. Received: folder={str(root)!r}")
    class_names = sorted(
        d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith(".")
    )
    if not class_names:
        raise ValueError(
            "An image folder needs one subfolder per class (e.g. photos/cat/1.jpg). "
            f"Received: folder={str(root)!r}"
        )
    paths, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = pathlib.Path(dirpath) / filename
                problem = _sniff(path) or (_verify(path) if verify_images else None)
                if problem is not None:
                    if not skip_bad_files:
                        raise ValueError(
                            f"{path} is {problem}. Remove it, or pass skip_bad_files=True "
                            f"(--skip-bad-files) to skip such files with a warning. "
                            f"Received: folder={str(root)!r}"
                        )
                    skipped.append(path)
                    log.warning("Skipping %s: %s", path, problem)
                    continue
                paths.append(str(path))
                labels.append(label)
    if not paths:
        raise ValueError(f"No images in the class subfolders. Received: folder={str(root)!r}")
    if len(class_names) < 2:
        # One class trains to 100% accuracy on nothing; usually the folder
        # given is one level too deep (photos/cat instead of photos).
        raise ValueError(
            "An image folder needs at least 2 class subfolders; this one has only "
            f"{class_names[0]!r}. Point it at the folder above the class folders. "
            f"Received: folder={str(root)!r}"
        )
    if skipped:
        log.warning("Skipped %d bad file(s) in %s.", len(skipped), root)
    return paths, np.asarray(labels, np.int32), class_names


def folder_source(path, val_split="auto", skip_bad_files=False, verify_images=False,
                  cache=False):
    """A folder of class subfolders of images.

    If `path` has `train/` and `val/` (or `validation/`) subfolders that are
    themselves class folders, they are the two splits. Otherwise the
    validation split is held out from the end of each class: `val_split` is
    a count per class ("500"), a fraction ("0.1"), another folder, "auto"
    (10% per class) or "none".

    Args:
        path: the folder.
        val_split: see above.
        skip_bad_files, verify_images: see `list_image_folder`.
        cache: read every file into memory once (small datasets).

    Returns:
        A `Source`.

    Example:
    >>> source = folder_source("cifar10/train", val_split="500")  # doctest: +SKIP
    """
    root = pathlib.Path(path)
    no_val = str(val_split).lower() == "none"
    holdout = None if no_val or val_split in (None, "auto") else parse_holdout(val_split)
    train_dir, val_dir = root, None
    if not no_val and holdout is None and val_split not in (None, "auto"):
        val_dir = pathlib.Path(val_split)
    elif (root / "train").is_dir():
        # The ImageNet folder layout: root/train/<class>, root/val/<class>.
        for candidate in ("val", "validation"):
            if (root / candidate).is_dir():
                train_dir = root / "train"
                val_dir = None if no_val or holdout is not None else root / candidate
                break
    options = dict(skip_bad_files=skip_bad_files, verify_images=verify_images)
    paths, labels, class_names = list_image_folder(train_dir, **options)
    train = ArraySplit("train", labels, paths=paths)
    validation = None
    if val_dir is not None:
        val_paths, val_labels, val_names = list_image_folder(val_dir, **options)
        if val_names != class_names:
            raise ValueError(
                "The validation folder's classes differ from the training folder's: "
                f"{val_names[:5]}... vs {class_names[:5]}... Received: val_split={str(val_dir)!r}"
            )
        validation = ArraySplit("validation", val_labels, paths=val_paths)
    elif not no_val:
        train_idx, val_idx = holdout_indices(labels, 0.1 if holdout is None else holdout)
        validation = train.subset("validation", val_idx)
        train = train.subset("train", train_idx)
    if cache:
        train = train.in_memory()
        validation = validation.in_memory() if validation is not None else None
    return Source("folder", str(root), class_names, train, validation,
                  description=f"image folder {root}")
