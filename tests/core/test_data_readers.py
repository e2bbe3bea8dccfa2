"""The npz:, folder: and 4-D IDX readers, the task inference and arrays/torch datasets: what loads, and the
one-line refusal of every bad input (pickles, zip bombs, mismatched lengths, NaNs; folders with no class, one
class, non-image files, huge or truncated images)."""

import gzip
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from ternkit.core import DataError, load_dataset, load_split
from ternkit.core.data_folder import MAX_PIXELS


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400
    return msg


# -- npz ------------------------------------------------------------------------------------------------------
def test_npz_any_rank_with_test_part(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x=rng.random((20, 3, 4, 4)), y=np.arange(20) % 3, x_test=rng.random((6, 3, 4, 4)),
             y_test=np.arange(6) % 3)
    d = load_dataset(f"npz:{p}")
    assert d.x.shape == (20, 3, 4, 4) and d.task == "classify" and d.labels == ["0", "1", "2"]
    t = load_dataset(f"npz:{p}:test")
    assert t.x.shape == (6, 3, 4, 4) and len(t) == 6
    s = load_split(f"npz:{p}", test=f"npz:{p}:test")
    assert s.test is not None and len(s.train) + len(s.val) == 20


def test_npz_infers_regression_and_autoencoder(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "r.npz"
    np.savez(p, x=rng.random((30, 5)), y=rng.random(30))
    d = load_dataset(f"npz:{p}")
    assert d.task == "regress" and d.y.shape == (30, 1) and "non-integer" in d.note
    np.savez(p, x=rng.random((30, 5)))
    a = load_dataset(f"npz:{p}")
    assert a.task == "autoencode" and np.array_equal(a.y, a.x)
    with pytest.raises(DataError, match="--task autoencode"):
        load_dataset(f"npz:{p}", task="classify")


def test_npz_with_pickled_objects_is_refused(tmp_path):
    p = tmp_path / "p.npz"
    np.savez(p, x=np.array([{"a": 1}, None], dtype=object), y=np.arange(2))
    with pytest.raises(DataError, match="Python objects") as e:
        load_dataset(f"npz:{p}")
    _one_line(e)


def test_npz_zip_bomb_is_refused_from_member_sizes(tmp_path, monkeypatch):
    from ternkit.core import readers

    monkeypatch.setitem(readers.LIMITS, "npz", 1 << 20)
    p = tmp_path / "bomb.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1 << 21,), np.uint8))
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for _ in range(32):
            f.write(bytes(1 << 16))
    assert p.stat().st_size < 100_000  # small on disk, 2 MiB unpacked
    with pytest.raises(DataError, match="zip bomb") as e:
        load_dataset(f"npz:{p}")
    _one_line(e)


def test_npz_header_declaring_more_than_it_holds_is_refused(tmp_path):
    p = tmp_path / "lie.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10)}
    with zipfile.ZipFile(p, "w") as z, z.open("x.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(400))
    with pytest.raises(DataError, match="declares shape"):
        load_dataset(f"npz:{p}")


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((5, 2)), "y": np.arange(4)}, "5 samples but 4"),
    ({"x": np.r_[np.zeros((4, 2)), [[np.nan, 1]]], "y": np.arange(5) % 2}, "NaN or inf .first at sample 4"),
    ({"x": np.zeros((5, 2)), "y": np.r_[np.zeros(4), np.inf]}, "targets hold NaN or inf"),
    ({"y": np.arange(5)}, "holds no array 'x'"),
    ({"x": np.zeros((5, 2)), "y": np.zeros(5, int)}, "single class"),
    ({"x": np.zeros((5, 1, 2, 2, 2)), "y": np.arange(5) % 2}, "more than 3 dimensions"),
    ({"x": np.array(["a", "b"]), "y": np.arange(2)}, "features must be numbers"),
])
def test_npz_bad_contents_are_one_line(tmp_path, arrays, match):
    p = tmp_path / "b.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(f"npz:{p}")
    _one_line(e)


def test_npz_that_is_not_a_zip_is_refused(tmp_path):
    p = tmp_path / "n.npz"
    p.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not an .npz file"):
        load_dataset(f"npz:{p}")


# -- folder ---------------------------------------------------------------------------------------------------
def _folder(root, classes=("cat", "dog"), n=3, size=(8, 6), mode="RGB"):
    rng = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def test_folder_reads_hwc_images_as_nchw(tmp_path):
    root = _folder(tmp_path / "d")
    (root / "cat" / "notes.txt").write_text("skipped: not an image name")
    d = load_dataset(f"folder:{root}")
    assert d.x.shape == (6, 3, 6, 8) and d.labels == ["cat", "dog"] and d.y.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(root / "cat" / "0.png"))
    assert np.array_equal(d.x[0], first.transpose(2, 0, 1))
    r = load_dataset(f"folder:{root}@4x5")
    assert r.x.shape == (6, 3, 4, 5)
    g = load_dataset(f"folder:{_folder(tmp_path / 'g', mode='L')}")
    assert g.x.shape == (6, 1, 6, 8)


@pytest.mark.parametrize("make, match", [
    (lambda r: r.mkdir(), "no class subfolders"),
    (lambda r: _folder(r, classes=("only",)), "one class"),
    (lambda r: (_folder(r), (r / "dog" / "bad.png").write_bytes(b"this is text")), "bad.png: not a PNG or JPEG"),
    (lambda r: (_folder(r), Image.new("RGB", (5, 5)).save(r / "dog" / "other.png")), "give a size"),
])
def test_folder_bad_layouts_are_one_line(tmp_path, make, match):
    root = tmp_path / "d"
    make(root)
    with pytest.raises(DataError, match=match) as e:
        load_dataset(f"folder:{root}")
    _one_line(e)


def test_folder_truncated_image_names_the_file(tmp_path):
    root = _folder(tmp_path / "d", size=(64, 64))
    whole = (root / "dog" / "1.png").read_bytes()
    (root / "dog" / "1.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"1.png: corrupt or truncated") as e:
        load_dataset(f"folder:{root}")
    _one_line(e)


def test_folder_decompression_bomb_is_refused_before_decoding(tmp_path):
    root = _folder(tmp_path / "d")
    side = int(MAX_PIXELS ** 0.5) + 1  # a blank PNG this large compresses to a few KB
    Image.new("L", (side, side)).save(root / "cat" / "bomb.png", optimize=True)
    assert (root / "cat" / "bomb.png").stat().st_size < 200_000
    with pytest.raises(DataError, match=r"bomb.png: .* pixels is more than") as e:
        load_dataset(f"folder:{root}")
    _one_line(e)


# -- IDX with channels ----------------------------------------------------------------------------------------
def _idx(path, arr):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
                + arr.astype(np.uint8).tobytes())


def test_idx_with_channels_is_nchw_and_a_wrong_rank_is_named(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (10, 5, 4, 3))
    _idx(tmp_path / "train-images-idx3-ubyte.gz", x)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(10) % 2)
    d = load_dataset(f"idx:{tmp_path}:train")
    assert d.x.shape == (10, 3, 5, 4) and np.array_equal(d.x[2], x[2].transpose(2, 0, 1))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((10, 2)))
    with pytest.raises(DataError, match="labels must have 1 dimension"):
        load_dataset(f"idx:{tmp_path}:train")
    _idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((10, 2)))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(10) % 2)
    with pytest.raises(DataError, match="images must have 3 dimensions"):
        load_dataset(f"idx:{tmp_path}:train")


# -- tasks, arrays, torch -------------------------------------------------------------------------------------
def test_csv_continuous_target_is_regression_and_can_be_overridden(tmp_path):
    p = tmp_path / "r.csv"
    rows = "\n".join(f"{i},{i % 7},{100 + 3 * i}" for i in range(300))
    p.write_text("a,b,target\n" + rows + "\n")
    d = load_dataset(f"csv:{p}:target")
    assert d.task == "regress" and d.labels == ["target"] and "300 distinct values" in d.note
    tr, va = load_split(f"csv:{p}:target").train, load_split(f"csv:{p}:target").val
    assert len(tr) == 240 and len(va) == 60
    c = load_dataset(f"csv:{p}:b")
    assert c.task == "classify" and len(c.labels) == 7


def test_arrays_and_torch_datasets_where_a_spec_is_taken():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = np.random.default_rng(0).random((12, 2, 3)).astype(np.float32), np.arange(12) % 3
    a = load_dataset((x, y))
    assert a.task == "classify" and a.x.shape == (12, 2, 3)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert np.array_equal(load_dataset(ds).x, x) and np.array_equal(load_dataset(DataLoader(ds, batch_size=5)).y, y)
    assert load_dataset(x).task == "autoencode"
    with pytest.raises(DataError, match="12 samples but 5"):
        load_dataset((x, y[:5]))
    with pytest.raises(DataError, match="a dataset must be"):
        load_dataset(3.5)


def test_autoencoder_data_from_a_labelled_set_keeps_the_split_and_the_classes():
    a, c = load_dataset("digits@val:3", task="autoencode"), load_dataset("digits@val:3")
    assert a.task == "autoencode" and np.array_equal(a.x, c.x)  # the same held-out part as for classification
    assert np.array_equal(a.classes, c.y) and a.class_names == c.labels and np.array_equal(a.y, a.x.reshape(len(a), -1))
