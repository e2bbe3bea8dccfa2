"""Model artifact -> a versioned, plain-JSON description of the Lava process graph (and back, validated).

The graph is what `lava_sim` builds, parameter for parameter, so the exported file *is* the simulated
network: the input encoding, then populations in topological order, each a neuron process (sigma-delta ReLU
or linear, integrate-and-fire, or the readout) with the synapse processes (Lava `Dense`, or `Conv` with
groups, strides and padding) that feed it from earlier populations. The structure comes from the model's node
graph (`lava_plan`: one handler per operation kind), the numbers from calibration data (`lava_numerics`);
`emulate` (`lava_emulate`) runs the same integer arithmetic in numpy, and the Lava run must match it exactly.

Input: graded spikes round(x_norm / u0) in `in_bits` signed bits (sigma-delta), or rate-coded unit spikes
with rates x_norm / max (integrate-and-fire; a signed input is split into +/- channels with weights [W, -W]).
The normalisation mean is folded into the biases of the input's readers, so the source sends x / std: zero
stays zero (sparse input events).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ternkit.core.atomic import write_text
from ternkit.core.errors import ArtifactError, OptionError
from ternkit.core.metrics import synaptic_nodes
from ternkit.core.model import TernaryModel
from ternkit.core.text import cut, is_name

from .emulate import emulate, encode_inputs
from .numerics import MAX_LAVA_GROUPS, PROC, Quantiser
from .plan import Plan, plan_forward, plan_model

__all__ = ["build_graph", "choose_percentile", "PERCENTILES", "save_graph", "load_graph", "validate_graph",
           "encode_inputs", "emulate", "upgrade_graph", "GRAPH_FORMAT", "GRAPH_VERSION", "NEURONS"]

GRAPH_FORMAT = "ternkit-lava-graph"
GRAPH_VERSION = 2  # 2: populations with several synapse groups (graphs); version 1 (chains) still loads
NEURONS = ("sigma-delta", "if")
RATE_DEN = 255  # input rates quantised to 8 bits


# ---------------------------------------------------------------------------------------------- building
def build_graph(model: TernaryModel, calib_x: np.ndarray, *, neuron: str = "sigma-delta", timesteps: int = 32,
                fixed: bool = True, in_bits: int = 8, act_bits: int = 16, percentile: float = 100.0,
                source: str = "") -> dict[str, Any]:
    """Map `model` to a Lava graph description; `calib_x` (raw samples, ideally training data) sets the units
    (fixed point) and, for integrate-and-fire, the data-based thresholds (activation percentile per
    population). Operations Lava cannot express raise UnsupportedError naming them."""
    if neuron not in NEURONS:
        raise OptionError(f"unknown neuron model {neuron!r}; choose one of {', '.join(NEURONS)}")
    if neuron == "sigma-delta":
        timesteps = 1
    if timesteps < 1 or timesteps > 100000:
        raise OptionError(f"timesteps must be in 1..100000, got {timesteps}")
    if not 0 < percentile <= 100:
        raise OptionError(f"percentile must be in (0, 100], got {percentile}")
    if not 2 <= in_bits <= 16 or not 8 <= act_bits <= 24:
        raise OptionError("in_bits must be in 2..16 and act_bits in 8..24")
    model.validate()
    if model.kind != "ternary":
        raise ArtifactError("a float model has no integer weights to map to Lava; export a ternary model")
    calib_x = np.asarray(calib_x, np.float32)
    in_shape = tuple(int(s) for s in model.input.shape)
    if calib_x.ndim < 2 or calib_x.shape[1:] != in_shape or len(calib_x) == 0:
        raise OptionError(f"calibration data must have samples of shape {in_shape}")
    # The source sends x / std; -mean / std is a constant every reader folds into its bias (zero padding
    # included), so zero pixels stay zero (sparse input events) and rates are non-negative.
    fold = bool(np.any(model.input.mean != 0))
    shift = np.broadcast_to(-model.input.mean / model.input.std, in_shape).astype(np.float64) if fold else None
    x_src = (calib_x / model.input.std).astype(np.float32) if fold else model.input.normalise(calib_x)
    plan = plan_model(model, neuron, shift)
    real = plan_forward(plan, x_src)
    xyc = len(in_shape) == 3 and any(g.src == 0 and g.kind == "conv" for p in plan.populations for g in p.groups)
    qmax = (1 << (in_bits - 1)) - 1
    xmax = float(np.abs(x_src).max()) or 1.0
    split = neuron == "if" and float(x_src.min()) < 0
    lava_in = [in_shape[2], in_shape[1], in_shape[0]] if xyc else [int(np.prod(in_shape))]
    inp: dict[str, Any] = {"process": PROC["source"], "shape": list(in_shape), "layout": "xyc" if xyc else "flat",
                           "mean": model.input.mean.astype(np.float64).reshape(-1).tolist(),
                           "std": model.input.std.astype(np.float64).reshape(-1).tolist(),
                           "stats_shape": list(model.input.mean.shape), "mean_in_bias": fold}
    src_int = None
    if neuron == "sigma-delta":
        u_in = xmax / qmax if fixed else 1.0
        inp.update(encoding="graded", bits=in_bits if fixed else None, unit=u_in, split_sign=False)
        if fixed:
            src_int = np.clip(np.round(x_src / u_in), -qmax, qmax).astype(np.int64)
    else:
        inp.update(encoding="rate", lam=xmax, rate_den=RATE_DEN if fixed else 1, split_sign=split, unit=xmax)
        if split:
            lava_in = lava_in[:-1] + [2 * lava_in[-1]]
        u_in = xmax  # value carried by one input spike
    inp["lava_shape"] = lava_in
    quant = Quantiser(plan, fixed=fixed, neuron=neuron, timesteps=timesteps, act_bits=act_bits, real=real,
                      percentile=percentile, src_int=src_int, src_unit=u_in, src_split=split,
                      src_layout=inp["layout"])
    if src_int is not None:  # the input's readers must stay within Lava's accumulators too: coarser input
        while not quant._reader_fits(0, src_int):
            u_in *= 2
            src_int = np.clip(np.round(x_src / u_in), -qmax, qmax).astype(np.int64)
            quant.ints[0], quant.units[0] = src_int, u_in
        inp["unit"] = u_in
    graph: dict[str, Any] = {
        "format": GRAPH_FORMAT, "version": GRAPH_VERSION, "numerics": "fixed_pt" if fixed else "floating_pt",
        "neuron": neuron, "timesteps": timesteps, "window": timesteps, "latency": plan.readout.depth,
        "labels": list(model.labels), "source": source, "calibration_samples": int(len(calib_x)),
        "percentile": float(percentile) if neuron == "if" else None, "model_fingerprint": model.fingerprint(),
        "input": inp, "entries": _entries(model), "populations": _populations(model, plan, quant, lava_in,
                                                                              in_bits, act_bits)}
    graph["readout"] = {"unit": float(graph["populations"][-1]["unit"])}
    validate_graph(graph)
    return graph


def _entries(model: TernaryModel) -> list[dict[str, Any]]:
    """The model's nodes with connections (the activity record's entries) and their dense connection counts."""
    counts, shapes = model.counts(), model.shapes()
    return [{"index": i, "node": model.nodes[i].name, "kind": model.nodes[i].op.kind,
             "connections": int(counts[i].connections), "neurons": int(np.prod(shapes[i]))}
            for i in synaptic_nodes(model)]


def _owner(model: TernaryModel) -> Any:
    """Activity entry of a synapse group: its own node if that has connections, else the next one that has
    (an affine's diagonal synapses and a branch's relays are counted where they serve)."""
    syn = synaptic_nodes(model)

    def owner(origin: int) -> int:
        return next((i for i in syn if i >= origin), syn[-1])
    return owner


def _lava_shape(shape: tuple[int, ...]) -> list[int]:
    return [shape[2], shape[1], shape[0]] if len(shape) == 3 else [int(shape[0])]


def _lava_bias(b: np.ndarray) -> list:
    """Per channel when it is constant over (H, W), else per neuron in (X, Y, C) order."""
    if b.ndim == 3:
        flat = b.reshape(b.shape[0], -1)
        if np.all(flat == flat[:, :1]):
            return flat[:, 0].tolist()
        return np.ascontiguousarray(b.transpose(2, 1, 0)).tolist()
    return b.tolist()


def _populations(model: TernaryModel, plan: Plan, quant: Quantiser, lava_in: list[int], in_bits: int,
                 act_bits: int) -> list[dict[str, Any]]:
    owner, fixed, out = _owner(model), quant.fixed, []
    lava_shapes = {0: lava_in}
    for k, p in enumerate(plan.populations[1:], start=1):
        nr, gis = quant.sigma_delta(k, p) if plan.neuron == "sigma-delta" else quant.integrate_fire(k, p)
        kind = "readout" if p.activation == "readout" else plan.neuron
        lava_shapes[k] = _lava_shape(p.shape)
        syns = []
        for g, gi in zip(p.groups, gis, strict=True):
            bits = 0 if plan.neuron == "if" else (in_bits if g.src == 0 else act_bits) if fixed else 24
            syn = quant.synapse(g, gi, lava_shapes[g.src], bits)
            syn.update(source=g.src, role=g.role, index=owner(g.origin), node=model.nodes[g.origin].name)
            syns.append(syn)
        bias = np.asarray(nr.pop("bias"))
        entry = {"node": p.node, "kind": kind, "process": PROC[kind],
                 "activation": None if kind == "readout" else p.activation, "shape": lava_shapes[k],
                 "phase": p.depth, "bias_mantissa": _lava_bias(bias), "synapses": syns,
                 "index": owner(max(g.origin for g in p.groups)), **nr}
        entry["vth"] = entry["vth"] if fixed else float(entry["vth"])
        out.append(entry)
    return out


PERCENTILES = (100.0, 99.9, 99.5, 99.0, 98.0, 95.0)


def choose_percentile(model: TernaryModel, calib_x: np.ndarray, held_out_x: np.ndarray, timesteps: int,
                      candidates: tuple[float, ...] = PERCENTILES, **kw: Any) -> float:
    """The integrate-and-fire threshold percentile whose graph agrees best with the reference on `held_out_x`
    (data not used for calibration, never test data), scored with the numpy emulation, which is bit-exact
    with Lava. A lower percentile clips the rare large activations but resolves the common ones with fewer
    timesteps; ties go to the higher percentile."""
    if len(held_out_x) == 0:
        raise OptionError("choosing a percentile needs held-out samples")
    ref = model.predict(held_out_x)
    scores = []
    for p in candidates:
        g = build_graph(model, calib_x, neuron="if", timesteps=timesteps, percentile=p, **kw)
        scores.append((float((emulate(g, held_out_x)[0].argmax(1) == ref).mean()), p))
    return max(scores)[1]


# ---------------------------------------------------------------------------------------------- file I/O
def save_graph(graph: dict[str, Any], path: str | os.PathLike) -> None:
    validate_graph(graph)
    write_text(path, json.dumps(graph, separators=(",", ":")) + "\n")


def load_graph(path: str | os.PathLike) -> dict[str, Any]:
    from ternkit.core.readers import MAX_TIMESTEPS, read_json

    graph = read_json(path, "Lava graph JSON", ArtifactError)  # bounded, regular files only, strict JSON
    try:
        graph = upgrade_graph(graph)  # version 1 (chains) still loads
        validate_graph(graph)
        for key in ("timesteps", "window", "latency"):  # declared sizes: checked before anything allocates
            _need(not isinstance(graph.get(key), int) or graph[key] <= MAX_TIMESTEPS,
                  f"{key} {graph.get(key)} is more than {MAX_TIMESTEPS} timesteps")
    except ArtifactError as e:
        raise ArtifactError(f"{path}: {e}") from None
    return graph


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ArtifactError(msg)


def _num_array(v: Any, what: str, integer: bool) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArtifactError(f"{what} is not a numeric array") from None
    _need(arr.dtype != object and np.all(np.isfinite(arr)), f"{what} holds non-finite values")
    if integer:
        _need(bool(np.all(arr == np.round(arr))), f"{what} must be integers in a fixed-point graph")
    return arr


def _int(v: Any, low: int, high: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def upgrade_graph(graph: Any) -> Any:
    """A version-1 graph (a chain: layer k reads layer k - 1) in the version-2 layout; others unchanged."""
    if not isinstance(graph, dict) or graph.get("format") != GRAPH_FORMAT or graph.get("version") != 1:
        return {k: v for k, v in graph.items() if k != "upgraded_from"} if isinstance(graph, dict) else graph
    layers = graph.get("layers")
    _need(isinstance(layers, list) and layers and all(isinstance(x, dict) and isinstance(x.get("synapse"), dict)
                                                     and isinstance(x.get("neuron"), dict) for x in layers),
          "layers must be a non-empty list of layer objects")
    pops, entries = [], []
    for k, layer in enumerate(layers):
        nr, syn = dict(layer["neuron"]), dict(layer["synapse"])
        syn.update(op=layer.get("op"), source=k, fan_out=layer.get("fan_out"), role="weights",
                   index=layer.get("index"), node=f"layer{layer.get('index')}",
                   weight_mantissa=layer.get("weight_mantissa"))
        if layer.get("op") == "conv":
            syn["groups"] = 1
        nr.update(synapses=[syn], index=layer.get("index"), node=f"layer{layer.get('index')}",
                  activation=None if nr.get("kind") == "readout" else "relu")
        if nr.get("kind") == "readout":
            nr["phase"] = graph.get("latency")
        pops.append(nr)
        entries.append({"index": layer.get("index"), "node": f"layer{layer.get('index')}",
                        "kind": "dense" if layer.get("op") == "dense" else "conv2d",
                        "connections": layer.get("dense_macs"), "neurons": int(np.prod(nr.get("shape") or [0]))})
    out = {k: v for k, v in graph.items() if k != "layers"}
    out.update(version=GRAPH_VERSION, populations=pops, entries=entries, upgraded_from=1)
    return out


def validate_graph(graph: Any) -> None:
    """Check everything `lava_sim` and `emulate` rely on; raise ArtifactError with the first breach."""
    _need(isinstance(graph, dict), "a Lava graph must be a JSON object")
    _need(graph.get("format") == GRAPH_FORMAT, f"not a {GRAPH_FORMAT} file")
    _need(graph.get("version") == GRAPH_VERSION, f"graph version {graph.get('version')!r:.20} is not supported "
          f"(this ternkit reads versions 1 and {GRAPH_VERSION})")
    _need(graph.get("numerics") in ("fixed_pt", "floating_pt"), "numerics must be fixed_pt or floating_pt")
    _need(graph.get("neuron") in NEURONS, f"neuron must be one of {', '.join(NEURONS)}")
    for key in ("timesteps", "window"):
        _need(_int(graph.get(key), 1, 1 << 62), f"{key} must be a positive integer")
    labels = graph.get("labels")
    _need(isinstance(labels, list) and len(labels) >= 2 and all(isinstance(s, str) for s in labels),
          "labels must be a list of at least two strings")
    inp = graph.get("input")
    _need(isinstance(inp, dict), "input section missing")
    fixed = graph["numerics"] == "fixed_pt"
    for key in ("shape", "lava_shape", "mean", "std", "stats_shape"):
        _need(isinstance(inp.get(key), list), f"input.{key} missing")
    _need(all(_int(v, 1, 1 << 31) for v in inp["shape"] + inp["lava_shape"]), "input shapes must be positive ints")
    _need(isinstance(inp.get("mean_in_bias"), bool), "input.mean_in_bias must be true or false")
    _need(inp.get("layout") in ("flat", "xyc") and inp.get("encoding") in ("graded", "rate"),
          "input layout/encoding unknown")
    _need((inp["encoding"] == "graded") == (graph["neuron"] == "sigma-delta"), "input encoding does not fit neuron")
    std = _num_array(inp["std"], "input.std", False)
    _need(bool(np.all(std > 0)), "input.std must be positive")
    _num_array(inp["mean"], "input.mean", False)
    if inp["encoding"] == "graded" and fixed:
        _need(_int(inp.get("bits"), 2, 24), "input.bits must be in 2..24")
        _need(isinstance(inp.get("unit"), int | float) and inp["unit"] > 0, "input.unit must be positive")
    if inp["encoding"] == "rate":
        _need(isinstance(inp.get("lam"), int | float) and inp["lam"] > 0, "input.lam must be positive")
        _need(_int(inp.get("rate_den"), 1, 1 << 30), "input.rate_den must be >= 1")
        _need(isinstance(inp.get("split_sign"), bool), "input.split_sign must be true or false")
    pops = graph.get("populations")
    _need(isinstance(pops, list) and pops, "populations must be a non-empty list")
    _need(graph["window"] == graph["timesteps"], "window must equal timesteps")
    entries = graph.get("entries")
    _need(isinstance(entries, list) and entries and all(
        isinstance(e, dict) and _int(e.get("index"), 0, 1 << 31) and _int(e.get("connections"), 0, 1 << 62)
        for e in entries), "entries must list the model's nodes with connections")
    owners = {e["index"] for e in entries}
    shapes, phases = [list(inp["lava_shape"])], [0]
    for k, p in enumerate(pops, start=1):
        where = f"populations[{k - 1}]"
        _need(isinstance(p, dict) and isinstance(p.get("synapses"), list) and p["synapses"],
              f"{where}: a population needs a non-empty synapses list")
        last = k == len(pops)
        _need(p.get("kind") == ("readout" if last else graph["neuron"]),
              f"{where}: neuron kind {p.get('kind')!r:.20} does not fit position and neuron model")
        _need(last or p.get("activation") in (("relu", "linear") if graph["neuron"] == "sigma-delta" else ("relu",)),
              f"{where}: activation {p.get('activation')!r:.20} is not possible for {graph['neuron']} neurons")
        nshape = p.get("shape")
        _need(isinstance(nshape, list) and len(nshape) in (1, 3) and all(_int(v, 1, 1 << 31) for v in nshape),
              f"{where}: neuron shape invalid")
        _need(p.get("index") in owners, f"{where}: index is not one of the entries")
        depth = None
        for j, syn in enumerate(p["synapses"]):
            at = f"{where}.synapses[{j}]"
            _need(isinstance(syn, dict) and _int(syn.get("source"), 0, k - 1), f"{at}: source must be an earlier "
                  "population (0 = the input)")
            prev = shapes[syn["source"]]
            depth = phases[syn["source"]] if depth is None else depth
            _need(phases[syn["source"]] == depth, f"{at}: its source is at another pipeline depth than the others")
            _need(syn.get("op") in ("dense", "conv") and syn.get("index") in owners, f"{at}: op or index invalid")
            w = _num_array(syn.get("weights"), f"{at}.weights", fixed)
            _need(list(w.shape) == syn.get("shape"), f"{at}: weights do not have the declared shape")
            if fixed:
                _need(bool(np.all(np.abs(w) <= 255 * (1 << 16))), f"{at}: weights out of range")
            _need(_int(syn.get("weight_exp"), -24, 24), f"{at}: weight_exp must be an integer in -24..24")
            _need(_int(syn.get("num_message_bits"), 0, 32), f"{at}: num_message_bits invalid")
            if syn["op"] == "dense":
                _need(w.ndim == 2 and w.shape[1] == int(np.prod(prev)) and [w.shape[0]] == nshape,
                      f"{at}: dense weights {list(w.shape)} do not connect {prev} to {nshape}")
            else:
                groups = syn.get("groups", 1)
                _need(_int(groups, 1, MAX_LAVA_GROUPS), f"{at}: conv groups invalid")
                for key in ("stride", "padding"):
                    _need(isinstance(syn.get(key), list) and len(syn[key]) == 2 and all(
                        _int(v, 1 if key == "stride" else 0, 1 << 16) for v in syn[key]), f"{at}: conv {key} invalid")
                ok = (w.ndim == 4 and syn.get("input_shape") == prev and len(prev) == 3 and len(nshape) == 3
                      and w.shape[3] * groups == prev[2] and nshape[2] == w.shape[0] and w.shape[0] % groups == 0)
                _need(ok, f"{at}: conv weights {list(w.shape)} do not connect {prev} to {nshape}")
                for d in range(2):
                    size = (prev[d] + 2 * syn["padding"][d] - w.shape[1 + d]) // syn["stride"][d] + 1
                    _need(size == nshape[d], f"{at}: conv output {nshape} does not follow from its input {prev}")
            fan = _num_array(syn.get("fan_out"), f"{at}.fan_out", True)
            _need(fan.size == int(np.prod(prev)), f"{at}: fan_out does not match the input count")
        _need(p.get("phase") == depth + 1, f"{where}: phase must be {depth + 1} (its delay from the source)")
        shift = p.get("in_shift")
        _need(_int(shift, -24, 24) or (isinstance(shift, list) and len(shift) == nshape[-1] and all(
            _int(v, -24, 24) for v in shift)), f"{where}: in_shift must be an integer in -24..24 (or one per channel)")
        _need(_int(p.get("bias_exp"), 0, 24), f"{where}: bias_exp invalid")
        bias = _num_array(p.get("bias_mantissa"), f"{where}.bias_mantissa", fixed)
        _need(list(bias.shape) == nshape or (len(nshape) == 3 and list(bias.shape) == [nshape[2]]),
              f"{where}: bias does not match the neuron shape")
        _need(isinstance(p.get("vth"), int | float) and not isinstance(p.get("vth"), bool) and p["vth"] >= 0,
              f"{where}: vth invalid")
        _need(isinstance(p.get("unit"), int | float) and p["unit"] > 0, f"{where}: unit must be positive")
        shapes.append(nshape)
        phases.append(p["phase"])
    _need(graph.get("latency") == phases[-1], "latency must be the readout's pipeline depth")
    _need(shapes[-1] == [len(labels)], f"readout has shape {shapes[-1]}, but there are {len(labels)} labels")
    _need(isinstance(graph.get("readout"), dict) and isinstance(graph["readout"].get("unit"), int | float),
          "readout.unit missing")
    _check_ranges(graph, fixed)


MAX_INT32 = (1 << 31) - 1


def _real(v: Any, low: float = -1e30, high: float = 1e30) -> bool:
    """A finite JSON number in [low, high] (JSON's 1e400 parses as inf)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def _check_ranges(graph: dict[str, Any], fixed: bool) -> None:
    """Every remaining field Lava or the emulation reads, type- and range-checked, so that nothing reaches
    Lava's processes that would overflow, fail to reshape or hang them (a string `num_weight_bits` did)."""
    inp = graph["input"]
    stats, shape = inp["stats_shape"], inp["shape"]
    _need(len(shape) <= 3 and len(stats) <= 3 and all(_int(v, 1, 1 << 31) for v in stats),
          "input.shape and input.stats_shape must hold 1 to 3 positive integers")
    n_stats = int(np.prod(stats)) if stats else 1
    _need(len(inp["mean"]) == n_stats and len(inp["std"]) == n_stats,
          f"input.mean and input.std must hold {n_stats} values (input.stats_shape {stats})")
    try:
        np.broadcast_shapes(tuple(stats), tuple(shape))
    except ValueError:
        raise ArtifactError(f"input.stats_shape {stats} does not fit input.shape {shape}") from None
    _need(all(_real(v) for v in inp["mean"] + inp["std"]), "input.mean and input.std must be finite numbers")
    n_in = int(np.prod(shape)) * (2 if inp.get("split_sign") is True and inp["encoding"] == "rate" else 1)
    _need(int(np.prod(inp["lava_shape"])) == n_in and len(inp["lava_shape"]) == (3 if inp["layout"] == "xyc" else 1),
          f"input.lava_shape {inp['lava_shape']} does not fit input.shape {shape} and layout {inp['layout']}")
    for key in ("unit", "lam"):
        _need(key not in inp or inp[key] is None or _real(inp[key], 1e-30), f"input.{key} must be a positive number")
    _need(_real(graph["readout"]["unit"], 1e-30), "readout.unit must be a positive number")
    _need(graph.get("source") is None or (isinstance(graph["source"], str) and len(graph["source"]) <= 4096),
          "source must be a string of at most 4096 characters")
    _need(graph.get("percentile") is None or _real(graph["percentile"], 1e-9, 100), "percentile must be in (0, 100]")
    _need(graph.get("calibration_samples") is None or _int(graph["calibration_samples"], 0, 1 << 62),
          "calibration_samples must be a count")
    fp = graph.get("model_fingerprint")
    _need(fp is None or (isinstance(fp, str) and len(fp) == 64 and all(c in "0123456789abcdef" for c in fp)),
          "model_fingerprint must be 64 hexadecimal digits")
    for e in graph["entries"]:
        _need(e.get("node") is None or is_name(e["node"]), f"entries: node name {cut(e.get('node'))} is not valid")
    for k, p in enumerate(graph["populations"]):
        where = f"populations[{k}]"
        _need(p.get("node") is None or is_name(p["node"]), f"{where}: node name {cut(p.get('node'))} is not valid")
        bias = np.abs(np.asarray(p["bias_mantissa"], np.float64))
        if fixed:
            _need(_int(p["vth"], 0, MAX_INT32), f"{where}: vth must be an integer in 0..{MAX_INT32}")
            _need(float(bias.max(initial=0)) * 2.0 ** p["bias_exp"] <= MAX_INT32,
                  f"{where}: bias_mantissa * 2^bias_exp does not fit 32 bits")
        else:
            _need(_real(p["vth"], 0) and float(bias.max(initial=0)) <= 1e30, f"{where}: vth or bias out of range")
        _need(_real(p["unit"], 1e-30), f"{where}: unit must be a positive number")
        for j, syn in enumerate(p["synapses"]):
            at = f"{where}.synapses[{j}]"
            nwb = syn.get("num_weight_bits")
            _need(_int(nwb, 1, 8) if fixed else nwb is None or _int(nwb, 1, 8),
                  f"{at}: num_weight_bits must be an integer in 1..8{'' if fixed else ' or null'}")
            _need(syn.get("node") is None or is_name(syn["node"]),
                  f"{at}: node name {cut(syn.get('node'))} is not valid")
