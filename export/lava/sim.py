"""Build a Lava graph description into real Lava processes and stream samples through Loihi2SimCfg.

Why one run per chunk of samples: Lava's compile + start-up costs ~0.3-1 s, so samples are streamed through
one compiled network, one every `graph["window"]` timesteps and pipelined across layers (each population
resets after the last step of its current sample), so a chunk of N samples takes N * window + latency steps.
Outputs are read once at the end from the readout's (samples, classes) record and the neurons'
message counters -- never through `Monitor`, which is the slow path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ternkit.core.errors import OptionError

from .compat import import_lava
from .graph import encode_inputs, validate_graph

__all__ = ["LavaRun", "simulate_graph", "lava_activity"]


@dataclass
class LavaRun:
    """Result of streaming samples through the Lava simulator."""

    readout: np.ndarray  # (N, classes) readout record in graph units (multiply by graph["readout"]["unit"])
    messages: list[np.ndarray]  # per-neuron messages sent, summed over samples: input source first, then layers
    samples: int
    timesteps_per_sample: int
    startup_seconds: float  # compile + start + first step, summed over chunks
    run_seconds: float  # the remaining steps plus reading results
    chunks: int
    numerics: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.samples / max(self.startup_seconds + self.run_seconds, 1e-9)

    @property
    def steady_samples_per_second(self) -> float:
        return self.samples / max(self.run_seconds, 1e-9)


def _build(graph: dict[str, Any], data: np.ndarray, fixed: bool):
    """Lava processes for every population and synapse group of the graph, connected; returns the source,
    the neuron populations (not the readout) and the readout."""
    import_lava()
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    from .procs.processes import ActivationMode, IntegrateFire, Readout, SampleSource, SigmaDeltaReset

    window, inp = graph["window"], graph["input"]
    dtype = np.int64 if fixed else np.float64
    src = SampleSource(data=data.astype(np.int32 if fixed else np.float64), window=window,
                       mode=inp["encoding"], timesteps=graph["timesteps"], rate_den=int(inp.get("rate_den", 1)))
    ports, neurons, readout = [src.s_out], [], None
    for pop in graph["populations"]:
        shape = tuple(pop["shape"])
        bias = np.asarray(pop["bias_mantissa"], dtype=dtype)
        bias = (bias * (1 << pop["bias_exp"]) if fixed else bias)
        bias = np.broadcast_to(bias.reshape(shape) if bias.size == int(np.prod(shape)) else bias, shape).copy()
        if pop["kind"] == "readout":
            readout = Readout(shape=(int(np.prod(shape)),), samples=len(data), window=window,
                              phase=graph["latency"], bias=bias.reshape(-1))
            target = readout.a_in
        elif pop["kind"] == "sigma-delta":
            mode = ActivationMode.RELU if pop["activation"] == "relu" else ActivationMode.UNIT
            target_proc = SigmaDeltaReset(shape=shape, vth=pop["vth"], bias=bias.astype(np.int32) if fixed else bias,
                                          window=window, in_shift=pop["in_shift"], fixed=fixed, phase=pop["phase"],
                                          samples=len(data), act_mode=mode)
            target = target_proc.a_in
        else:
            target_proc = IntegrateFire(shape=shape, vth=pop["vth"], bias=bias.astype(np.int32) if fixed else bias,
                                        window=window, phase=pop["phase"], samples=len(data),
                                        in_shift=pop["in_shift"])
            target = target_proc.a_in
        for syn in pop["synapses"]:  # several synapse processes into one InPort: Lava sums them
            w = np.asarray(syn["weights"], dtype=np.int32 if fixed else np.float64)
            if syn["op"] == "conv":
                conn = Conv(weight=w, input_shape=tuple(syn["input_shape"]), stride=tuple(syn["stride"]),
                            padding=tuple(syn["padding"]), groups=int(syn.get("groups", 1)),
                            weight_exp=syn["weight_exp"], num_weight_bits=syn["num_weight_bits"] or 8,
                            num_message_bits=syn["num_message_bits"])
            else:
                kw = {"num_weight_bits": syn["num_weight_bits"], "weight_exp": syn["weight_exp"]} if fixed else {}
                conn = Dense(weights=w, num_message_bits=syn["num_message_bits"], **kw)
            port = ports[syn["source"]]
            if tuple(port.shape) != tuple(conn.s_in.shape):
                port = port.reshape(conn.s_in.shape)
            port.connect(conn.s_in)
            out = conn.a_out
            if tuple(out.shape) != tuple(target.shape):
                out = out.reshape(target.shape)
            out.connect(target)
        if pop["kind"] == "readout":
            break
        neurons.append(target_proc)
        ports.append(target_proc.s_out)
    return src, neurons, readout


def simulate_graph(graph: dict[str, Any], x_raw: np.ndarray, *, fixed: bool | None = None,
                   chunk: int = 2000) -> LavaRun:
    """Run raw samples `x_raw` through the graph in Lava's CPU simulator (Loihi2SimCfg).

    `fixed` defaults to the graph's numerics; a fixed-point graph cannot run on the floating-point models
    and vice versa (the parameters differ), so a mismatch is refused."""
    validate_graph(graph)
    graph_fixed = graph["numerics"] == "fixed_pt"
    if fixed is None:
        fixed = graph_fixed
    if fixed != graph_fixed:
        raise OptionError(f"the graph holds {graph['numerics']} parameters; build it for the other numerics")
    if chunk < 1:
        raise OptionError("chunk must be at least 1")
    data = encode_inputs(graph, x_raw)
    if len(data) == 0:
        raise OptionError("no samples to simulate")
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag="fixed_pt" if fixed else "floating_pt")
    window = graph["window"]
    outs, counts = [], None
    startup = running = 0.0
    n_chunks = 0
    for lo in range(0, len(data), chunk):
        part = data[lo:lo + chunk]
        src, neurons, readout = _build(graph, part, fixed)
        steps = len(part) * window + graph["latency"]
        t0 = time.perf_counter()
        try:
            src.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            t1 = time.perf_counter()
            if steps > 1:
                src.run(condition=RunSteps(num_steps=steps - 1), run_cfg=cfg)
            out = np.asarray(readout.out.get())
            msgs = [np.asarray(n.messages.get()).reshape(-1) for n in neurons]
        finally:
            src.stop()
        t2 = time.perf_counter()
        startup += t1 - t0
        running += t2 - t1
        n_chunks += 1
        outs.append(out)
        msgs = [_sent_by_source(graph, part)] + msgs
        counts = msgs if counts is None else [a + b for a, b in zip(counts, msgs, strict=True)]
    return LavaRun(readout=np.concatenate(outs), messages=counts, samples=len(data), timesteps_per_sample=window,
                   startup_seconds=startup, run_seconds=running, chunks=n_chunks, numerics=graph["numerics"])


def _sent_by_source(graph: dict[str, Any], data: np.ndarray) -> np.ndarray:
    """Messages the source process sends per input neuron (graded: non-zero values; rate: spikes)."""
    if graph["input"]["encoding"] == "graded":
        return (data != 0).sum(0).reshape(-1).astype(np.int64)
    den, T = graph["input"]["rate_den"], graph["timesteps"]
    return np.floor(T * data / den + 1e-9).sum(0).reshape(-1).astype(np.int64)


def lava_activity(graph: dict[str, Any], run: LavaRun) -> list[dict[str, Any]]:
    """Activity entries of a Lava run's counters (or `emulate`'s): one per model node with connections
    (`graph["entries"]`), summing the synapse groups that serve it. A group's messages are those its source
    sent; its synaptic ops skip zero weights (message x that input's non-zero fan-out); a population's
    neuron updates (neurons x timesteps) go to the entry of its last group's node."""
    from ternkit.core.activity_schema import entry

    window, T, n = graph["window"], graph["timesteps"], run.samples
    acc = {e["index"]: {"messages": 0.0, "synops": 0.0, "updates": 0.0, "slots": 0.0, "fan": 0.0, "inputs": 0}
           for e in graph["entries"]}
    for pop in graph["populations"]:
        acc[pop["index"]]["updates"] += int(np.prod(pop["shape"])) * window
        for syn in pop["synapses"]:
            msgs = np.asarray(run.messages[syn["source"]], np.float64).reshape(-1)
            fan = np.asarray(syn["fan_out"], np.float64).reshape(-1)
            a = acc[syn["index"]]
            a["messages"] += float(msgs.sum()) / n
            a["synops"] += float(msgs @ fan) / n
            a["slots"] += msgs.size * T
            a["fan"] += float(fan.sum())
            a["inputs"] += msgs.size
    out = []
    for e in graph["entries"]:
        a = acc[e["index"]]
        out.append(entry(e["index"], e["kind"], neurons=e["neurons"], fan_out=a["fan"] / max(a["inputs"], 1),
                         messages=a["messages"], synaptic_ops=a["synops"], neuron_updates=a["updates"],
                         input_activation_sparsity=1 - a["messages"] / a["slots"] if a["slots"] else 0.0,
                         node=e.get("node")))
    return out
