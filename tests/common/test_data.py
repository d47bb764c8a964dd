"""common.data: offline sets with their real sizes, and every real reader on tiny files in the genuine format."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from common.data import DatasetNotFoundError, ImageTensors, as_tensors, get_dataset, list_datasets
from common.data.vision import IMAGENET16_MD5, md5sum


def test_registry_lists_every_source() -> None:
    expected = {
        "mnist",
        "cifar10",
        "cifar100",
        "svhn",
        "imagenet",
        "imagenet16_120",
        "bike_sharing",
        "sgemm_product",
        "glue",
        "digits",
        "mnist5k",
        "mnist1d",
        "diabetes",
        "teacher_student",
        "powerlaw_kernel",
    }
    assert expected <= set(list_datasets())


def test_unknown_name_and_split_raise_value_error(data_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        get_dataset("nope")
    with pytest.raises(ValueError, match="no split 'train'"):
        get_dataset("digits", "train", root=data_root)


def test_digits_has_1797_images(data_root: Path) -> None:
    x, y = as_tensors(get_dataset("digits", root=data_root))
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


def test_mnist5k_is_5000_real_images_500_per_class(data_root: Path) -> None:
    x, y = as_tensors(get_dataset("mnist5k", root=data_root))
    assert x.shape == (5000, 1, 28, 28)
    assert torch.bincount(y, minlength=10).tolist() == [500] * 10
    assert (data_root / "mnist5k.npz").exists(), "mnist5k must be cached as .npz after its first load"
    # real digits: mean intensity of MNIST is about 0.13 (x/255), far from noise (0.5)
    assert 0.10 < float(x.mean()) < 0.16


def test_diabetes_and_synthetic_sets(data_root: Path) -> None:
    x, y = as_tensors(get_dataset("diabetes", root=data_root))
    assert x.shape == (442, 10) and y.dtype == torch.float32
    train = as_tensors(get_dataset("teacher_student", "train", n_samples=300, seed=3))
    test = as_tensors(get_dataset("teacher_student", "test", n_samples=300, seed=3))
    again = as_tensors(get_dataset("teacher_student", "train", n_samples=300, seed=3))
    assert torch.equal(train[0], again[0]) and not torch.equal(train[0], test[0])
    assert len(torch.unique(train[1])) >= 5, "the teacher should use most classes"
    lam, c = as_tensors(get_dataset("powerlaw_kernel", n=100, nu=2.0, kappa=0.5))
    assert torch.isclose(lam[1], torch.tensor(2.0**-2.0, dtype=lam.dtype)) and torch.isclose(c.sum(), c.new_tensor(1.0))


@pytest.mark.slow
def test_mnist1d_split_sizes(data_root: Path) -> None:
    x, y = as_tensors(get_dataset("mnist1d", "train", root=data_root))
    xt, _ = as_tensors(get_dataset("mnist1d", "test", root=data_root))
    assert x.shape == (4000, 40) and xt.shape == (1000, 40) and set(y.tolist()) == set(range(10))


def test_missing_mnist_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        get_dataset("mnist", "train", root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "train-images-idx3-ubyte" in message and "mnist5k" in message


def _write_idx(path: Path, array: np.ndarray) -> None:
    dtype_code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reader_on_idx_files(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28)), np.array([3, 1, 4, 1, 5])
    _write_idx(raw / "train-images-idx3-ubyte", images)
    _write_idx(raw / "train-labels-idx1-ubyte", labels)
    _write_idx(raw / "t10k-images-idx3-ubyte", images[:2])
    _write_idx(raw / "t10k-labels-idx1-ubyte", labels[:2])
    train = get_dataset("mnist", "train", root=tmp_path)
    assert len(train) == 5 and len(get_dataset("mnist", "test", root=tmp_path)) == 2
    x, y = train[2]
    assert x.shape == (1, 28, 28) and y == 4
    assert torch.allclose(x[0], torch.tensor(images[2], dtype=torch.float32) / 255)


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def test_cifar10_and_cifar100_readers_on_pickled_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny files in the genuine layout (batches + meta); torchvision reads them, its md5 check refuses them.

    The real batches were pickled by Python 2: their str keys load as str under latin1, as these do."""
    rng = np.random.default_rng(1)
    for i in range(1, 6):
        _pickle(
            tmp_path / "cifar-10-batches-py" / f"data_batch_{i}",
            {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [i % 10] * 4},
        )
    test_pixels = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    _pickle(tmp_path / "cifar-10-batches-py" / "test_batch", {"data": test_pixels, "labels": [7, 8, 9]})
    _pickle(tmp_path / "cifar-10-batches-py" / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    with pytest.raises(DatasetNotFoundError, match="cifar10.*md5.*check_md5=False or COMMON_DATA_CHECK_MD5=0"):
        get_dataset("cifar10", "train", root=tmp_path, check_md5=True)
    monkeypatch.setenv("COMMON_DATA_CHECK_MD5", "1")
    with pytest.raises(DatasetNotFoundError, match="md5"):
        get_dataset("cifar10", "test", root=tmp_path)
    monkeypatch.setenv("COMMON_DATA_CHECK_MD5", "0")  # as tests/conftest.py sets it for scripts run by tests
    assert len(get_dataset("cifar10", "test", root=tmp_path)) == 3
    train = get_dataset("cifar10", "train", root=tmp_path, check_md5=False)
    test = get_dataset("cifar10", "test", root=tmp_path, check_md5=False)
    assert isinstance(train, ImageTensors) and len(train) == 20 and len(test) == 3
    assert as_tensors(train)[1].tolist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4, "batches 1..5 in order"
    x, y = test[1]
    assert x.shape == (3, 32, 32) and y == 8 and test.images.dtype == torch.uint8
    assert torch.allclose(x, torch.tensor(test_pixels[1].reshape(3, 32, 32), dtype=torch.float32) / 255)
    _pickle(
        tmp_path / "cifar-100-python" / "train",
        {"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), "fine_labels": [99] * 6, "coarse_labels": [1] * 6},
    )
    _pickle(
        tmp_path / "cifar-100-python" / "test",
        {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "fine_labels": [0, 42], "coarse_labels": [0, 1]},
    )
    _pickle(tmp_path / "cifar-100-python" / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]})
    assert as_tensors(get_dataset("cifar100", "test", root=tmp_path, check_md5=False))[1].tolist() == [0, 42]
    assert len(get_dataset("cifar100", "train", root=tmp_path, check_md5=False)) == 6
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        get_dataset("cifar10", "train", root=tmp_path / "empty")
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"cifar100.*cifar-100-python/meta"):
        get_dataset("cifar100", "test", root=tmp_path, check_md5=False)


def test_svhn_reader_on_mat_file(tmp_path: Path) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [10]], dtype=np.uint8)})
    with pytest.raises(DatasetNotFoundError, match="svhn.*md5"):
        get_dataset("svhn", "test", root=tmp_path, check_md5=True)
    ds = get_dataset("svhn", "test", root=tmp_path, check_md5=False)
    images, labels = as_tensors(ds)
    assert labels.tolist() == [0, 1, 2, 0], "SVHN stores digit 0 as label 10"
    assert images.shape == (4, 3, 32, 32)
    assert torch.allclose(images[1], torch.tensor(x[..., 1].transpose(2, 0, 1), dtype=torch.float32) / 255)
    with pytest.raises(DatasetNotFoundError, match="train_32x32.mat"):
        get_dataset("svhn", "train", root=tmp_path, check_md5=False)


def test_imagenet16_120_reader_checks_md5_and_keeps_120_classes(tmp_path: Path) -> None:
    base = tmp_path / "ImageNet16"
    rng = np.random.default_rng(3)
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        _pickle(base / name, {"data": rng.integers(0, 256, (3, 768), dtype=np.uint8), "labels": [1, 120, 121]})
    with pytest.raises(DatasetNotFoundError, match="md5"):
        get_dataset("imagenet16_120", "train", root=tmp_path)
    assert md5sum(base / "val_data") != IMAGENET16_MD5["val_data"]
    train = get_dataset("imagenet16_120", "train", root=tmp_path, check_md5=False)
    x, y = as_tensors(train)
    assert x.shape == (20, 3, 16, 16), "label 121 is outside ImageNet16-120 and must be dropped"
    assert sorted(set(y.tolist())) == [0, 119], "labels 1..120 are shifted to 0..119"


def test_imagenet_imagefolder(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("n01", "n02"):
        folder = tmp_path / "imagenet" / "val" / cls
        folder.mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), 128, dtype=np.uint8)).save(folder / "a.JPEG")
    from torchvision import transforms

    ds = get_dataset("imagenet", "val", root=tmp_path, transform=transforms.ToTensor())
    assert len(ds) == 2 and ds.classes == ["n01", "n02"] and ds[1][1] == 1
    with pytest.raises(DatasetNotFoundError, match="ILSVRC2012"):
        get_dataset("imagenet", "train", root=tmp_path)


BIKE_COLUMNS = [
    "instant",
    "dteday",
    "season",
    "yr",
    "mnth",
    "hr",
    "holiday",
    "weekday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
    "casual",
    "registered",
    "cnt",
]


def test_bike_sharing_reader_on_uci_rows(tmp_path: Path) -> None:
    folder = tmp_path / "bike_sharing"
    folder.mkdir()
    rows = [
        "1,2011-01-01,1,0,1,0,0,6,0,1,0.24,0.2879,0.81,0,3,13,16",
        "2,2011-01-01,1,0,1,1,0,6,0,1,0.22,0.2727,0.8,0,8,32,40",
    ]
    (folder / "hour.csv").write_text(",".join(BIKE_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    x, y = as_tensors(get_dataset("bike_sharing", root=tmp_path))
    assert x.shape == (2, 12) and y.tolist() == [16.0, 40.0]
    seed_layout = tmp_path / "seed" / "Bike-Sharing"  # the sgd_genfunc seed unzips here
    seed_layout.mkdir(parents=True)
    (seed_layout / "hour.csv").write_text((folder / "hour.csv").read_text())
    assert len(get_dataset("bike_sharing", root=tmp_path / "seed")) == 2
    with pytest.raises(DatasetNotFoundError, match="day.csv"):
        get_dataset("bike_sharing", root=tmp_path, file="day")


def test_sgemm_reader_averages_the_four_runs(tmp_path: Path) -> None:
    folder = tmp_path / "sgemm_product"
    folder.mkdir()
    header = "MWG,NWG,KWG,MDIMC,NDIMC,MDIMA,NDIMB,KWI,VWM,VWN,STRM,STRN,SA,SB,Run1 (ms),Run2 (ms),Run3 (ms),Run4 (ms)"
    (folder / "sgemm_product.csv").write_text(header + "\n16,16,16,8,8,8,8,2,1,1,0,0,0,0,115.26,115.87,118.55,115.8\n")
    x, y = as_tensors(get_dataset("sgemm_product", root=tmp_path))
    assert x.shape == (1, 14) and y.item() == pytest.approx((115.26 + 115.87 + 118.55 + 115.8) / 4, rel=1e-6)


def test_glue_reader_on_saved_hf_split(tmp_path: Path) -> None:
    import datasets

    split = datasets.Dataset.from_dict({"sentence": ["a fine film", "dull"], "label": [1, 0], "idx": [0, 1]})
    datasets.DatasetDict({"train": split, "validation": split.select([1])}).save_to_disk(
        str(tmp_path / "glue" / "sst2")
    )
    train = get_dataset("glue", "train", root=tmp_path, task="sst2")
    assert train["sentence"] == ["a fine film", "dull"] and train["label"] == [1, 0]
    assert len(get_dataset("glue", "validation", root=tmp_path, task="sst2")) == 1
    with pytest.raises(DatasetNotFoundError, match="save_to_disk"):
        get_dataset("glue", "train", root=tmp_path, task="rte")
    with pytest.raises(DatasetNotFoundError, match="download_and_prepare"):
        get_dataset("glue", "train", root=tmp_path, task="rte", backend="tfds")
