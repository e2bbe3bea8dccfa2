"""Thresholds that make reset-to-zero rate coding as accurate as it can be.

NIR's IF neuron resets to zero: the charge above the threshold is lost at every spike, so a neuron driven by
a constant z fires every floor(theta / z) + 1 steps -- rates 1, 1/2, 1/3, ... near the threshold. Too low a
threshold saturates and quantises coarsely; too high a threshold leaves few spikes in T steps. There is no
closed form for the best one once the inputs are spike trains, so it is measured, population by population
in topological order (earlier ones already calibrated, so the errors they pass on are seen):

- the population's input currents are recorded once (a simulation up to it, every step);
- each candidate threshold (a geometric grid around the 99.9th percentile of the reference activation) is
  replayed through the IF equations on those currents, in float32 as the graph runs;
- the value of a spike (lambda) is fitted by least squares between lambda * rate and the reference activation
  (the reset losses make it differ from theta), and the candidate with the smallest relative squared error
  wins; for the output population the candidate whose spike counts agree most often with the reference argmax.
"""

from __future__ import annotations

import numpy as np

from ternkit.core.model import TernaryModel

from .graph import Neuron, build_graph
from .sim import run_graph

__all__ = ["calibrate", "GRID"]

MEMORY = 1 << 27  # bytes of recorded input currents per simulated chunk of calibration samples
GRID = tuple(float(c) for c in np.geomspace(0.3, 6.0, 15))  # candidate thresholds / the 99.9th percentile


def _replay(currents: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Spike counts of IF neurons (r = 1, reset to 0) fed `currents` (T, N, ...) with thresholds `thr`."""
    v = np.zeros(currents.shape[1:], np.float32)
    counts = np.zeros(currents.shape[1:], np.int32)
    for i in currents:
        v += i
        s = v > thr
        v[s] = 0
        counts += s
    return counts


def calibrate(model: TernaryModel, x: np.ndarray, timesteps: int, *, integer_weights: bool = False,
              grid: tuple[float, ...] = GRID) -> dict[str, Neuron]:
    """Neuron numbers for every IF population of `model`'s graph from raw calibration samples `x`."""
    xn = model.input.normalise(np.asarray(x, np.float32))
    acts = dict(zip((n.name for n in model.nodes), model.activations(xn, normalised=True), strict=True))
    params: dict[str, Neuron] = {}
    graph = build_graph(model, params, integer_weights=integer_weights, timesteps=timesteps)
    names = [k for k, n in graph.nodes.items() if n.kind == "IF"]
    for name in names:
        graph = build_graph(model, params, integer_weights=integer_weights, timesteps=timesteps)
        is_out = name == graph.output_neuron
        copies = graph.copies if is_out else 1
        logits = acts[graph.neurons[name]]
        ref = np.maximum(np.tile(logits, (1, copies)) if is_out else logits, 0).astype(np.float64)
        pos = ref[ref > 0]
        base = float(np.percentile(pos, 99.9)) if pos.size else 1.0
        thr1 = graph.nodes[name].params["v_threshold"].astype(np.float64)  # built with theta = 1
        # per candidate: sums of rate * ref, rate^2, and the output's argmax agreements
        sums = np.zeros((len(grid), 3))
        chunk = max(1, MEMORY // (4 * timesteps * int(np.prod(graph.nodes[name].shape))))
        for s in range(0, len(xn), chunk):
            run = run_graph(graph, xn[s:s + chunk], timesteps, record=name, stop_after=name, activity=False)
            currents = np.stack(run.currents)
            r_ref = ref[s:s + chunk]
            for j, c in enumerate(grid):
                counts = _replay(currents, (thr1 * base * c).astype(np.float32)).astype(np.float64)
                rate = counts / timesteps
                hits = 0.0
                if is_out:
                    summed = counts.reshape(len(counts), copies, -1).sum(1)
                    hits = float((summed.argmax(1) == logits[s:s + chunk].argmax(1)).sum())
                sums[j] += [float((rate * r_ref).sum()), float((rate * rate).sum()), hits]
        aa = max(float((ref * ref).sum()), 1e-30)
        best: tuple | None = None
        for j, c in enumerate(grid):
            ra, rr, hits = sums[j]
            theta = base * c
            value = ra / rr if rr > 0 else theta
            err = (value * value * rr - 2 * value * ra + aa) / aa  # sum (value * rate - ref)^2, relative
            score = (-hits, err) if is_out else (err,)
            if best is None or score < best[0]:
                best = (score, theta, value)
        assert best is not None
        params[name] = Neuron(best[1], best[2])
    return params
