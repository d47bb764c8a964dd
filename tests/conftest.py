"""Suite-wide settings: one torch thread per xdist worker, offline hub, OpenMPI as root, markers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("COMMON_DATA_CHECK_MD5", "0")  # tests write tiny CIFAR/SVHN files: torchvision's md5 is off
if hasattr(os, "geteuid") and os.geteuid() == 0:
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (gpu tests run only where CUDA exists)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The repository's data/ folder: offline caches (mnist5k.npz, mnist1d) are shared across tests and runs."""
    root = REPO_ROOT / "data"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def mpirun() -> list[str]:
    """The mpirun of this virtual environment with the flags CI needs (oversubscribe for 2 cores)."""
    exe = VENV_BIN / "mpirun"
    if not exe.exists():
        raise RuntimeError(f"mpirun not found next to {sys.executable}; run `make setup`")
    return [str(exe), "--oversubscribe"]
