import gzip
import struct

import numpy as np
import pytest

from ternkit.core import DataError, load_dataset, load_split, normalisation, split_dataset


@pytest.mark.mnist
def test_builtin_sets():
    iris, digits, mnist = load_dataset("iris"), load_dataset("digits"), load_dataset("mnist-sample")
    assert iris.x.shape == (150, 4) and digits.x.shape == (1797, 1, 8, 8)
    assert mnist.x.shape == (5000, 1, 28, 28) and sorted(set(mnist.y.tolist())) == list(range(10))
    assert mnist.x.max() == 255


@pytest.mark.mnist
def test_split_is_stratified_and_deterministic():
    d = load_dataset("mnist-sample")  # rows sorted by label: a naive split would lose classes
    tr, va = split_dataset(d, 0.2, seed=4)
    tr2, va2 = split_dataset(d, 0.2, seed=4)
    assert np.array_equal(va.y, va2.y) and np.array_equal(tr.x, tr2.x)
    assert len(va) == 1000 and np.bincount(va.y).min() >= 95
    _, va3 = split_dataset(d, 0.2, seed=5)
    assert not np.array_equal(va.y, va3.y)


def test_normalisation_from_train_only():
    s = load_split("iris", seed=0)
    mean, std = normalisation(s.train)
    assert np.allclose(mean, s.train.x.mean(0), atol=1e-5) and mean.shape == (4,)


def _write_idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_idx_dir(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, size=(20, 28, 28))
    y = np.arange(20) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", x)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y)
    d = load_dataset(f"idx:{tmp_path}")
    assert d.x.shape == (20, 1, 28, 28) and np.array_equal(d.y, y)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y[:5])
    with pytest.raises(DataError, match="holds 20 images, t10k-labels-idx1-ubyte.gz holds 5 labels"):
        load_dataset(f"idx:{tmp_path}:t10k")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError):
        load_dataset(f"idx:{tmp_path}")


def test_csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("f1,label,f2\n1,a,2\n3,b,4\n5,a,6\n")
    d = load_dataset(f"csv:{p}")
    assert d.labels == ["a", "b"] and d.x.tolist() == [[1, 2], [3, 4], [5, 6]]
    p.write_text("label,f\n1,2\n1,3\n1,4\n")
    with pytest.raises(DataError, match="single class"):
        load_dataset(f"csv:{p}")
    p.write_text("label,f\n1,2\n0,nan\n1,4\n")
    with pytest.raises(DataError, match="NaN"):
        load_dataset(f"csv:{p}")
    p.write_text("label,f\n1,2\n0,x\n1,4\n")
    with pytest.raises(DataError, match="non-numeric"):
        load_dataset(f"csv:{p}")


@pytest.mark.parametrize("spec", ["nope", "csv:/does/not/exist.csv", "idx:/does/not/exist", ""])
def test_bad_specs(spec):
    with pytest.raises(DataError):
        load_dataset(spec)


def test_split_spec_selects_held_out_part():
    tr, va = split_dataset(load_dataset("iris"), 0.2, seed=3)
    held = load_dataset("iris@val:3")
    assert np.array_equal(held.x, va.x) and np.array_equal(load_dataset("iris@train:3:0.2").y, tr.y)
    assert len(load_dataset("iris@val")) == 30
    with pytest.raises(DataError):
        load_dataset("iris@val:1:1.5")
