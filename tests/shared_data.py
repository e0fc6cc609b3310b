"""Where the tests find the real CIFAR-10 JPEGs: the `shared` folder beside the checkout."""

import pathlib

import pytest

# tests/shared_data.py -> parents[1] is the checkout, parents[2] holds shared/
# (CI lays a copy there).
CIFAR_TRAIN = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10" / "train"


def cifar_train_folder():
    """The CIFAR-10 training folder; fails the test if it is missing.

    The real-image checks are the point of the tests that use it, so a
    missing dataset fails loudly instead of skipping them.
    """
    if not CIFAR_TRAIN.is_dir():
        pytest.fail(f"CIFAR-10 JPEGs not found at {CIFAR_TRAIN} (the shared/ folder "
                    "beside the repository)")
    return CIFAR_TRAIN
