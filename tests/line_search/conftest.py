import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    """Digits train tensors (standardised, stratified 75/25 split; DESIGN.md §5)."""
    from line_search.harness.data import load_task

    x, y = load_task("digits").train.tensors
    return x, y
