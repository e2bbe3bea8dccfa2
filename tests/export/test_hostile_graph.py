"""A Lava graph file is data from anyone: every field Lava or the emulation reads is type- and range-checked before
Lava starts, so a bad file is one line (exit 2) within seconds -- never a reshape error, an OverflowError or a
hang (a string `num_weight_bits` hung the simulator and leaked shared memory). A graph must carry the fingerprint
of the model it is simulated with (a version-1 file, which has none, must match the model's structure).

Real files: the graph is written by `ternkit export lava`, then edited as a stranger would."""

from __future__ import annotations

import json

import pytest
from conftest import random_mlp

from ternkit.cli import main
from ternkit.core import save_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("graph")
    save_model(random_mlp((4, 8, 3), seed=0), d / "m.tern")
    save_model(random_mlp((4, 8, 3), seed=1), d / "other.tern")  # same shapes and labels, other weights
    assert main(["export", "lava", str(d / "m.tern"), "-o", str(d / "g.lava.json"), "--calibrate", "iris"]) == 0
    return d


def _set(graph: dict, path: str, value) -> None:
    *keys, last = path.split(".")
    obj = graph
    for k in keys:
        obj = obj[int(k)] if isinstance(obj, list) else obj[k]
    if value is _DELETE:
        del obj[last]
    elif isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


_DELETE = object()
S = "populations.0.synapses.0"
CASES = [  # (field, value, words in the message)
    ("input.stats_shape", [7, 7], "stats_shape"),
    ("input.stats_shape", "x", "stats_shape"),
    ("input.stats_shape", [0], "stats_shape"),
    ("input.mean", [0.0] * 7, "input.mean"),
    ("input.std", [1.0, -1.0, 1.0, 1.0], "input.std"),
    ("input.lava_shape", [5], "do not connect"),
    ("input.lava_shape", [2, 2], "lava_shape"),
    ("input.bits", "eight", "input.bits"),
    ("input.unit", 0, "input.unit"),
    ("populations.0.bias_mantissa", [10**30] * 8, "64 bits"),
    ("populations.0.bias_mantissa", [2**40] * 8, "32 bits"),
    ("populations.0.bias_mantissa", [1e300] * 8, "32 bits"),
    ("populations.0.bias_exp", 99, "bias_exp"),
    ("populations.0.vth", 2**40, "vth"),
    ("populations.0.vth", "1", "vth"),
    ("populations.0.vth", -1, "vth"),
    ("populations.0.in_shift", 99, "in_shift"),
    ("populations.0.unit", 0, "unit"),
    ("populations.0.node", "a */ b\n", "node name"),
    ("populations.0.shape", [8, 8], "shape"),
    (f"{S}.num_weight_bits", "eight", "num_weight_bits"),
    (f"{S}.num_weight_bits", 0, "num_weight_bits"),
    (f"{S}.num_weight_bits", 9, "num_weight_bits"),
    (f"{S}.num_weight_bits", None, "num_weight_bits"),
    (f"{S}.num_weight_bits", 2.5, "num_weight_bits"),
    (f"{S}.num_weight_bits", True, "num_weight_bits"),
    (f"{S}.weight_exp", 100, "weight_exp"),
    (f"{S}.num_message_bits", "x", "num_message_bits"),
    (f"{S}.weights", [[1] * 4] * 7, "weights"),
    (f"{S}.weights", "w", "weights"),
    (f"{S}.source", 5, "source"),
    (f"{S}.node", "x" * 100_000, "characters"),
    ("timesteps", 10**9, "timesteps"),
    ("timesteps", "32", "timesteps"),
    ("labels", ["a"], "labels"),
    ("readout.unit", -1, "readout.unit"),
    ("model_fingerprint", "zz", "model_fingerprint"),
    ("model_fingerprint", "0" * 64, "fingerprints differ"),
    ("model_fingerprint", _DELETE, "carries no model fingerprint"),
    ("version", 99, "version"),
    ("source", {"path": "/etc/passwd"}, "source"),
    ("source", "x" * 5000, "source"),
    ("percentile", "high", "percentile"),
    ("calibration_samples", -1, "calibration_samples"),
]


IDS = [f"{c[0]}={str(c[1])[:12]}" for c in CASES]


def _bad(exported, tmp_path, field, value):
    graph = json.loads((exported / "g.lava.json").read_text())
    _set(graph, field, value)
    (tmp_path / "bad.lava.json").write_text(json.dumps(graph))
    return tmp_path / "bad.lava.json"


@pytest.mark.parametrize("field,value,words", CASES, ids=IDS)
def test_every_graph_field_is_refused_by_the_loader(exported, tmp_path, field, value, words):
    """The checks themselves, without lava-nc (as `make test-core` runs): load, then match to the model."""
    from ternkit.core import ArtifactError, load_model
    from ternkit.export.lava.export import check_graph_for
    from ternkit.export.lava.graph import load_graph

    path = _bad(exported, tmp_path, field, value)
    with pytest.raises(ArtifactError) as e:
        check_graph_for(load_graph(path), load_model(exported / "m.tern"), str(path), "m.tern")
    assert words in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 600, str(e.value)[:700]


@pytest.mark.lava
@pytest.mark.timeout(120)
@pytest.mark.parametrize("field,value,words", CASES, ids=IDS)
def test_every_graph_field_is_checked_before_lava_starts(exported, tmp_path, capsys, field, value, words):
    _bad(exported, tmp_path, field, value)
    assert main(["simulate", str(exported / "m.tern"), "--graph", str(tmp_path / "bad.lava.json"),
                 "--dataset", "iris", "--limit", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and len(err) < 600, err[:700]
    assert words in err, err


@pytest.mark.lava
def test_another_models_graph_is_refused_with_or_without_its_fingerprint(exported, tmp_path, capsys):
    g = exported / "g.lava.json"
    argv = ["simulate", str(exported / "other.tern"), "--graph", str(g), "--dataset", "iris", "--limit", "5"]
    assert main(argv) == 2 and "fingerprints differ" in capsys.readouterr().err
    graph = json.loads(g.read_text())
    del graph["model_fingerprint"]
    (tmp_path / "nofp.lava.json").write_text(json.dumps(graph))
    argv[3] = str(tmp_path / "nofp.lava.json")
    assert main(argv) == 2 and "carries no model fingerprint" in capsys.readouterr().err
    graph["upgraded_from"] = 1  # a stranger cannot claim to be an upgraded version-1 file: the loader decides
    (tmp_path / "claim.lava.json").write_text(json.dumps(graph))
    argv[3] = str(tmp_path / "claim.lava.json")
    assert main(argv) == 2 and "carries no model fingerprint" in capsys.readouterr().err


def test_a_version_1_graph_must_match_the_models_weights(exported, tmp_path):
    """Version-1 files carry no fingerprint: the structure and each layer's zero weights must match."""
    from ternkit.core import ArtifactError, load_model
    from ternkit.export.lava.export import check_graph_for
    from ternkit.export.lava.graph import load_graph

    g = json.loads((exported / "g.lava.json").read_text())
    v1 = {k: v for k, v in g.items() if k not in ("populations", "entries", "model_fingerprint")}
    v1["version"] = 1
    v1["layers"] = [{"index": e["index"], "op": p["synapses"][0]["op"], "fan_out": p["synapses"][0]["fan_out"],
                     "dense_macs": e["connections"], "weight_mantissa": p["synapses"][0].get("weight_mantissa"),
                     "synapse": {k: v for k, v in p["synapses"][0].items()
                                 if k not in ("op", "source", "fan_out", "role", "index", "node", "groups",
                                              "weight_mantissa")},
                     "neuron": {k: v for k, v in p.items() if k not in ("synapses", "node", "index", "activation")}}
                    for p, e in zip(g["populations"], g["entries"], strict=True)]
    (tmp_path / "v1.lava.json").write_text(json.dumps(v1))
    graph = load_graph(tmp_path / "v1.lava.json")
    check_graph_for(graph, load_model(exported / "m.tern"), "v1.lava.json", "m.tern")  # its own model: fine
    with pytest.raises(ArtifactError, match="weights of node"):
        check_graph_for(graph, load_model(exported / "other.tern"), "v1.lava.json", "other.tern")
