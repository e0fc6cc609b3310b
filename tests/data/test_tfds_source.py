"""The tensorflow-datasets source without a network."""

import pytest

from se_keras.data import get_source
from se_keras.data import sources


def test_tfds_without_network_points_to_data_dir(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    with pytest.raises(ValueError, match="--data-dir"):
        sources.tfds_source("cifar10", data_dir=str(tmp_path), download=False)

    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(ValueError, match=r"could not be downloaded.*--data-dir.*"
                                         r"ConnectionError: Failed to resolve host"):
        get_source("tfds:cifar10", data_dir=str(tmp_path))
