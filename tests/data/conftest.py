"""Shared fixtures: real CIFAR-10 JPEGs from the shared folder beside the checkout, TFRecords."""

import shutil

import pytest

from se_keras import cli
from tests.shared_data import cifar_train_folder


@pytest.fixture(scope="session")
def cifar_train():
    return cifar_train_folder()


@pytest.fixture(scope="session")
def small_cifar(tmp_path_factory, cifar_train):
    """An image folder of 6 real CIFAR JPEGs per class (60 images, 10 classes)."""
    root = tmp_path_factory.mktemp("small_cifar")
    for class_dir in sorted(cifar_train.iterdir()):
        (root / class_dir.name).mkdir()
        for path in sorted(class_dir.glob("*.jpg"))[:6]:
            shutil.copy(path, root / class_dir.name / path.name)
    return root


@pytest.fixture
def write_tfrecords():
    """Writes an image folder as 3 training shards through the command line."""

    def write(folder, output, *extra):
        assert cli.main(["data", "to-tfrecords", str(folder), str(output), "--shards", "3",
                         *extra]) == 0

    return write
