"""Installs se_keras. `pip install -e ".[test]"` is the README's set-up command."""

import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "se_keras" / "version.py").read_text()
).group(1)

setup(
    name="se_keras",
    version=VERSION,
    description="Squeeze-and-Excitation networks for Keras 3 (TensorFlow, JAX, PyTorch): "
    "layers, model builders, pretrained weights, training and export.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["se_keras", "se_keras.*"]),
    package_data={"se_keras": ["*.json", "**/*.json", "**/*.npz"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16",
        # Keras before 3.11 has safe_mode bypasses (CVE-2025-1550, CVE-2025-9906).
        "keras>=3.11",
        "tensorflow-datasets>=4.9",
        "tensorboard>=2.16",
        "numpy>=1.26",
        "safetensors>=0.4",
        "h5py>=3.10",
        "matplotlib>=3.7",
        "scikit-learn>=1.3",
        "pillow>=10",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",
            # The two other Keras backends, for tests/test_backends.py (the
            # package itself needs neither). torch is pinned to the release
            # whose CPU-only build (a 190 MB wheel) CI's machines hold on local
            # disk, which pip takes; elsewhere, install that build first
            # (README, below the install commands), or pip fetches a CUDA build
            # of several GB.
            "jax",
            "torch==2.13.0",
        ],
    },
    entry_points={"console_scripts": ["se-keras=se_keras.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
