import json
import pickle

import numpy as np
import pytest
from conftest import random_cnn, random_mlp

from ternkit.core import ArtifactError, load_model, save_model
from ternkit.core.io import _read_header, pack_ints, unpack_ints


@pytest.mark.parametrize("bits,lo,hi", [(2, -1, 1), (3, -2, 2), (3, -3, 3)])
def test_pack_roundtrip(bits, lo, hi):
    q = np.random.default_rng(1).integers(lo, hi + 1, size=1003).astype(np.int8)
    packed = pack_ints(q, bits)
    assert packed.size == -(-1003 // (8 // bits))
    assert np.array_equal(unpack_ints(packed, bits, 1003), q)


def test_ternary_is_two_bits_low_first():
    # ONNX INT2 layout: first element in the lowest bits, two's complement
    assert pack_ints(np.array([1, -1, 0, 1], np.int8), 2).tolist() == [0b01_00_11_01]


@pytest.mark.parametrize("make", [random_mlp, random_cnn, lambda: random_mlp(kind="float")])
def test_roundtrip_bit_exact(tmp_path, make):
    m = make()
    m.provenance = {"seed": 3, "dataset": "x"}
    save_model(m, tmp_path / "m.tern")
    r = load_model(tmp_path / "m.tern")
    assert r.kind == m.kind and r.labels == m.labels and r.provenance == m.provenance
    for a, b in zip(m.weight_layers, r.weight_layers, strict=True):
        assert a.weight.dtype == b.weight.dtype and np.array_equal(a.weight, b.weight)
        assert np.array_equal(a.scale, b.scale) and np.array_equal(a.bias, b.bias)
    x = np.random.default_rng(0).normal(size=(5, *m.input.shape)).astype(np.float32)
    assert np.array_equal(m.forward(x), r.forward(x))


def test_ternary_file_is_small(tmp_path):
    m = random_mlp((784, 256, 10))
    save_model(m, tmp_path / "m.tern")
    floats = sum(layer.scale.size + layer.bias.size for layer in m.weight_layers) + 2 * 784  # + mean, std
    assert (tmp_path / "m.tern").stat().st_size < m.num_weights() / 4 + 4 * floats + 2000  # 2000: header


def test_rejects_missing_pickle_truncated(tmp_path):
    with pytest.raises(ArtifactError, match="no such file"):
        load_model(tmp_path / "nope.tern")
    (tmp_path / "p.tern").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ArtifactError, match="not a ternkit model"):
        load_model(tmp_path / "p.tern")
    save_model(random_mlp(), tmp_path / "m.tern")
    raw = (tmp_path / "m.tern").read_bytes()
    (tmp_path / "t.tern").write_bytes(raw[: len(raw) - 7])
    with pytest.raises(ArtifactError):
        load_model(tmp_path / "t.tern")


def test_rejects_out_of_range_trits(tmp_path):
    m = random_mlp()
    m.layers[0].weight[0, 0] = -2  # representable in 2 bits, but not a trit
    with pytest.raises(ArtifactError, match="outside"):
        m.validate()
    # write the file by hand past validation: the reader must still refuse it
    from safetensors.numpy import load, save
    good = tmp_path / "g.tern"
    save_model(random_mlp(), good)
    raw = good.read_bytes()
    meta = _read_header(raw)
    tensors = load(raw)
    tensors["layer0.weight"] = np.full_like(tensors["layer0.weight"], 0b10101010)
    (tmp_path / "bad.tern").write_bytes(save(tensors, metadata={"ternkit": json.dumps(meta)}))
    with pytest.raises(ArtifactError, match="outside"):
        load_model(tmp_path / "bad.tern")


def test_save_is_atomic(tmp_path):
    m = random_mlp()
    m.layers[0].bias[0] = np.nan
    with pytest.raises(ArtifactError):
        save_model(m, tmp_path / "m.tern")
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_readable_by_others(tmp_path):
    save_model(random_mlp(), tmp_path / "m.tern")
    assert (tmp_path / "m.tern").stat().st_mode & 0o044 == 0o044
