"""GLUE tasks through HF ``datasets`` (a saved DatasetDict under root/glue/<task>, else the hub) or TFDS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.cli import UsageError
from common.data.registry import DatasetNotFoundError, register_dataset

__all__ = ["GLUE_TASKS", "GLUE_TEXT_FIELDS"]

GLUE_TEXT_FIELDS = {
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
}
GLUE_TASKS = tuple(GLUE_TEXT_FIELDS)
_SPLITS = (
    "train",
    "validation",
    "test",
    "validation_matched",
    "validation_mismatched",
    "test_matched",
    "test_mismatched",
)


def _hf(task: str, split: str, root: Path) -> Any:
    import datasets

    local = root / "glue" / task
    if local.exists():
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UsageError(f"glue/{task} saved at {local} has no split {split!r}; has {', '.join(loaded)}")
            return loaded[split]
        return loaded
    try:
        return datasets.load_dataset("nyu-mll/glue", task, split=split, cache_dir=str(root / "hf_cache"))
    except Exception as exc:  # noqa: BLE001 - offline hub failures come in many exception types
        raise DatasetNotFoundError(
            f"dataset 'glue' task {task!r}: missing {local} and the hub is unreachable ({type(exc).__name__}); "
            f"run `datasets.load_dataset('nyu-mll/glue', '{task}').save_to_disk('{local}')` on a machine online"
        ) from None


def _tfds(task: str, split: str, root: Path) -> Any:
    import tensorflow_datasets as tfds

    data_dir = root / "tensorflow_datasets"
    if not (data_dir / "glue" / task).exists():
        raise DatasetNotFoundError(
            f"dataset 'glue' task {task!r}: missing {data_dir / 'glue' / task}; prepare it online with "
            f"`tfds.builder('glue/{task}', data_dir='{data_dir}').download_and_prepare(file_format='array_record')`"
        )
    # data_source reads array_record files without TensorFlow; records come back as dicts of numpy values
    return tfds.data_source(f"glue/{task}", data_dir=str(data_dir), split=split, download=False)


@register_dataset("glue", splits=_SPLITS, description="GLUE tasks via HF datasets or TFDS (kw task, backend)")
def _glue(split: str, root: Path, task: str = "sst2", backend: str = "hf") -> Any:
    if task not in GLUE_TASKS:
        raise UsageError(f"unknown GLUE task {task!r}; choose one of {', '.join(GLUE_TASKS)}")
    if backend == "hf":
        return _hf(task, split, root)
    if backend == "tfds":
        return _tfds(task, split, root)
    raise UsageError(f"unknown GLUE backend {backend!r}; choose hf or tfds")
