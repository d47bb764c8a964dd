"""Shared fixtures for hp_scaling tests: tiny offline data, built in the test process."""

import pytest
import torch

from hp_scaling.loaders import load_data


@pytest.fixture(scope="session")
def digits_all():
    return load_data("digits", "all")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
