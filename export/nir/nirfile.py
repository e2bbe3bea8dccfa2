"""ternkit's spiking graph <-> the `nir` package's NIRGraph, and the .nir file (HDF5) written atomically.

`nir` (and h5py) are an optional extra, `ternkit[nir]`: only writing and reading files needs them; building,
calibration and the simulator do not. Metadata holds what a consumer needs to run the graph as ternkit does
(timesteps, the input encoding and normalisation, labels) as plain HDF5 values: strings, integers, float32
arrays (lists and dicts are stored as JSON text, which every HDF5 reader can take).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ternkit.core.atomic import atomic_path
from ternkit.core.errors import ArtifactError, TernkitError

from .graph import NirNode, SpikingGraph

__all__ = ["NirUnavailable", "require_nir", "to_nir", "from_nir", "write_nir", "read_nir", "nir_version"]

KINDS = ("Input", "Output", "Affine", "Conv2d", "SumPool2d", "Scale", "Flatten", "IF")
JSON_KEYS = ("labels", "neurons", "joins")


class NirUnavailable(TernkitError):
    """The optional `nir` package is missing."""


def require_nir() -> Any:
    try:
        import nir
    except ImportError:
        raise NirUnavailable("NIR files need the optional `nir` package: pip install 'ternkit[nir]'") from None
    return nir


def nir_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("nir")
    except Exception:  # noqa: BLE001 - not installed
        return None


def _node(nir: Any, n: NirNode) -> Any:
    p = dict(n.params)
    if n.kind == "Conv2d":
        p["input_shape"] = tuple(int(s) for s in p["input_shape"])
        p["stride"] = tuple(int(s) for s in p["stride"])
        p["padding"] = tuple(int(s) for s in p["padding"])
        p["dilation"] = tuple(int(s) for s in p["dilation"])
    node = getattr(nir, n.kind)(**p)
    if n.origin is not None:  # which model node it serves: activity entries of a simulated file
        node.metadata = {"ternkit_node": int(n.origin)}
    return node


def to_nir(graph: SpikingGraph) -> Any:
    """The NIRGraph (types checked by `nir`). Nodes and metadata in name order -- the order HDF5 gives them
    back -- so that writing a file that was read gives the same bytes."""
    nir = require_nir()
    meta = {k: (json.dumps(v) if k in JSON_KEYS else v) for k, v in graph.metadata.items()}
    meta["joins"] = json.dumps({str(k): v for k, v in graph.joins.items()})
    return nir.NIRGraph(nodes={k: _node(nir, graph.nodes[k]) for k in sorted(graph.nodes)},
                        edges=list(graph.edges), metadata=dict(sorted(meta.items())))


def _shape(node: Any) -> tuple[int, ...]:
    out = node.output_type.get("output")
    if out is None:
        raise ArtifactError(f"NIR node {type(node).__name__} has no output shape")
    return tuple(int(s) for s in np.asarray(out).reshape(-1))


def from_nir(g: Any) -> SpikingGraph:
    """ternkit's form of a NIRGraph of the primitives it writes, nodes in topological order."""
    nodes: dict[str, NirNode] = {}
    for name, node in g.nodes.items():
        kind = type(node).__name__
        if kind not in KINDS:
            raise ArtifactError(f"NIR node {name!r:.60} is a {kind}, which ternkit does not simulate")
        if kind == "Input":
            p = {"input_type": {"input": np.asarray(node.input_type["input"], np.int64)}}
        elif kind == "Output":
            p = {"output_type": {"output": np.asarray(node.output_type["output"], np.int64)}}
        elif kind == "Flatten":
            p = {"input_type": {"input": np.asarray(node.input_type["input"], np.int64)},
                 "start_dim": int(node.start_dim), "end_dim": int(node.end_dim)}
        else:
            p = {k: getattr(node, k) for k in node.__dataclass_fields__
                 if k not in ("input_type", "output_type", "metadata")}
            p = {k: v.item() if isinstance(v, np.generic) else v for k, v in p.items()}  # HDF5 scalars
        origin = dict(node.metadata or {}).get("ternkit_node")
        origin = int(origin) if isinstance(origin, int | np.integer) and not isinstance(origin, bool) else None
        nodes[name] = NirNode(kind, p, _shape(node), origin)
    edges = [(str(a), str(b)) for a, b in g.edges]
    order, done = [], set()
    while len(order) < len(nodes):  # topological order (Kahn), inputs first
        ready = [k for k in nodes if k not in done and all(a in done for a, b in edges if b == k)]
        if not ready:
            raise ArtifactError("the NIR graph has a cycle; ternkit simulates feed-forward graphs only")
        order += ready
        done.update(ready)
    meta = {}
    for k, v in dict(g.metadata or {}).items():
        v = v.decode() if isinstance(v, bytes) else v
        v = v.item() if isinstance(v, np.generic) else v  # HDF5 gives numpy scalars
        meta[k] = json.loads(v) if k in JSON_KEYS and isinstance(v, str) else v
    out = SpikingGraph({k: nodes[k] for k in order}, edges, {}, metadata=meta)
    out.neurons = {k: k for k, n in out.nodes.items() if n.kind == "IF"}
    joins = meta.pop("joins", None)
    if isinstance(joins, dict):
        out.joins = {int(k): [s for s in v if s in nodes] for k, v in joins.items()
                     if str(k).isdigit() and isinstance(v, list)}
    return out


def write_nir(graph: SpikingGraph, path: str | Path) -> Path:
    """Write the .nir file atomically (an existing file is replaced only when the new one is complete)."""
    nir = require_nir()
    g = to_nir(graph)
    with atomic_path(path, suffix=".nir") as tmp:
        nir.write(tmp, g)
    return Path(path)


def read_nir(path: str | Path) -> SpikingGraph:
    nir = require_nir()
    try:
        g = nir.read(path)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as e:
        raise ArtifactError(f"{str(path)[:200]} is not a NIR file ternkit can read: {str(e)[:200]}") from None
    return from_nir(g)
