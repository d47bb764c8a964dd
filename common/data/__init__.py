"""Dataset registry: real readers and offline sets behind ``get_dataset(name, split)``."""

from common.data import glue, offline, tabular, vision  # noqa: F401 - importing registers the datasets
from common.data.offline import load_mnist5k_arrays, powerlaw_spectrum, teacher_student
from common.data.registry import (
    DatasetNotFoundError,
    as_tensors,
    describe_datasets,
    get_dataset,
    list_datasets,
    register_dataset,
    require_files,
)
from common.data.vision import ImageTensors

__all__ = [
    "DatasetNotFoundError",
    "ImageTensors",
    "as_tensors",
    "describe_datasets",
    "get_dataset",
    "list_datasets",
    "load_mnist5k_arrays",
    "powerlaw_spectrum",
    "register_dataset",
    "require_files",
    "teacher_student",
]
