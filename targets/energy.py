"""Energy per inference: counts of events times the target's energy per event, itemised.

Two cost models, chosen by the target's kind:
- von Neumann (`mcu`, `cpu`): arithmetic (an add per non-zero ternary weight, a multiply and an add per output;
  a MAC per connection for dense weights; the adds, compares and multiplies of the other operations as
  `ops.ARITHMETIC` lists them per kind) plus memory traffic (parameters read once, activation buffers written
  once and read once, in words of the target's width).
- neuromorphic: synaptic operations + neuron updates (active / inactive) + messages over the nodes with
  connections (weights, pooling, add, concat); the weights stay in the cores, so there is no parameter
  traffic. With an activity record from a simulation, its counts are used.
Every item carries its count, the energy per event and the product, so a reader can redo the sum.
"""

from __future__ import annotations

import math

from ternkit.core.errors import ArtifactError
from ternkit.core.model import TernaryModel

from .activity import Activity
from .memory import activation_buffers
from .ops import LayerOps
from .spec import Target

__all__ = ["estimate", "float_baseline", "dense_alternative"]


def _item(what: str, count: float, role_pj: float, role: str) -> dict:
    return {"item": what, "count": float(count), "role": role, "pj_each": role_pj, "pj": float(count) * role_pj}


def _words(bits: float, target: Target) -> float:
    return math.ceil(bits / target.value("memory_word_bits"))


# how energy.py costs the arithmetic `ops.ARITHMETIC` lists per operation kind
ROLE = {"add": "accumulate", "bias add": "accumulate", "compare": "accumulate", "multiply": "multiply",
        "scale multiply": "multiply"}


def _arithmetic_items(target: Target, ops: list[LayerOps], scale_multiply: bool) -> list[dict]:
    """The work besides the MACs, one item per (operation kind, operation): e.g. `maxpool2d: compare`.
    Weight operations contribute their bias add (and scale multiply if `scale_multiply`) per output."""
    sums: dict[tuple[str, str], float] = {}
    for o in ops:
        for what, count in o.arithmetic.items():
            if count and (what != "scale multiply" or scale_multiply):
                key = ("weights" if o.weights else o.kind, what)
                sums[key] = sums.get(key, 0.0) + count
    items = []
    for (kind, what), count in sums.items():
        label = f"{what} per output" if kind == "weights" else f"{kind}: {what}"
        items.append(_item(label, count, target.pj(ROLE[what]), ROLE[what]))
    return items


def _activation_items(target: Target, model: TernaryModel) -> dict:
    elements = activation_buffers(model)["written_elements"]
    return _item("activation words written once and read once",
                 2 * _words(elements * target.value("activation_bits"), target),
                 target.pj("activation_access"), "activation_access")


def _von_neumann(target: Target, model: TernaryModel, ops: list[LayerOps], memory: dict) -> list[dict]:
    ternary = model.kind == "ternary" and model.levels == 1
    weighted = [o for o in ops if o.weights]
    if target.skip_zero_weights and target.skip_zero_activations:
        n_ops, which = sum(o.effective_macs for o in weighted), "effective MAC (zero weights and inputs skipped)"
    elif target.skip_zero_weights:
        n_ops, which = sum(o.nonzero_weight_macs for o in weighted), "non-zero-weight MAC (zero weights skipped)"
    else:
        n_ops, which = sum(o.dense_macs for o in weighted), "dense connection"
    items = []
    if ternary:
        items.append(_item(f"add/subtract, one per {which}", n_ops, target.pj("accumulate"), "accumulate"))
    else:
        items.append(_item(f"MAC, one per {which}", n_ops, target.pj("mac"), "mac"))
    items += _arithmetic_items(target, ops, scale_multiply=ternary)
    items.append(_item("parameter words read (weights as stored, scales, biases)",
                       _words(8 * memory["parameter_bytes"], target), target.pj("weight_access"), "weight_access"))
    items.append(_activation_items(target, model))
    return items


def _neuromorphic(target: Target, ops: list[LayerOps], activity: Activity | None) -> tuple[list[dict], str]:
    ops = [o for o in ops if o.synaptic]  # relu, affine, flatten are properties of their producer's neurons
    if activity is not None:
        synops = activity.synaptic_ops
        messages = sum(layer["messages_per_inference"] for layer in activity.layers)
        updates = activity.neuron_updates
        # share of updates that are active: measured on the reference if we have data, else all (upper bound)
        neurons = sum(o.neurons for o in ops)
        measured = all(o.measured for o in ops)
        active_share = sum(o.active_neurons for o in ops) / neurons if measured else 1.0
        source = (f"activity record ({activity.backend}, {activity.samples} samples)"
                  + ("; active share of neuron updates from the reference run" if measured
                     else "; all neuron updates counted as active (no data to split them)"))
    else:
        synops = sum(o.effective_macs if target.skip_zero_activations else o.nonzero_weight_macs for o in ops)
        messages = sum(o.messages for o in ops)
        updates = sum(o.neurons for o in ops)
        active_share = sum(o.active_neurons for o in ops) / updates
        source = ("reference forward pass on data (one message per non-zero activation, one timestep per sample)"
                  if all(o.measured for o in ops) else
                  "structure only (no data: every input counted as non-zero, an upper bound)")
    active = updates * active_share
    items = [_item("synaptic operations", synops, target.pj("synaptic_op"), "synaptic_op"),
             _item("neuron updates, active", active, target.pj("neuron_update_active"), "neuron_update_active"),
             _item("neuron updates, inactive", updates - active, target.pj("neuron_update_inactive"),
                   "neuron_update_inactive"),
             _item("messages (spikes) routed", messages, target.pj("message"), "message")]
    return items, source


def estimate(target: Target, model: TernaryModel, ops: list[LayerOps], memory: dict,
             activity: Activity | None = None) -> dict:
    """Itemised energy of one inference of `model` on `target`, in picojoules."""
    if target.von_neumann:
        items = _von_neumann(target, model, ops, memory)
        measured = all(o.measured for o in ops)
        source = ("operation counts from the reference forward pass on data" if measured else
                  "structural operation counts (no data)")
        if activity is not None and not measured and target.skip_zero_activations:
            source += "; activation sparsity not applied (needs --dataset)"
    else:
        items, source = _neuromorphic(target, ops, activity)
    return {"per_inference_pj": sum(i["pj"] for i in items), "items": items, "counts_from": source}


def _dense_items(t: Target, model: TernaryModel, ops: list[LayerOps], weight_bits: float, what: str) -> list[dict]:
    # the float32 parameters (model.float32_bytes) with the weights at `weight_bits` instead of 32
    n_params_bits = 8 * model.float32_bytes() - (32 - weight_bits) * model.num_weights()
    return [_item("MAC per dense connection", sum(o.dense_macs for o in ops if o.weights), t.pj("mac"), "mac"),
            *_arithmetic_items(t, ops, scale_multiply=False),
            _item(f"parameter words read ({what})", _words(n_params_bits, t), t.pj("weight_access"), "weight_access"),
            _activation_items(t, model)]


def dense_alternative(target: Target, model: TernaryModel, ops: list[LayerOps]) -> dict | None:
    """The same architecture with dense weights of the target's `dense_weight_bits` (int8 on an MCU, float32 on
    a CPU): what the ternary model is competing with on that device. None for neuromorphic targets."""
    if not target.von_neumann:
        return None
    bits = target.value("dense_weight_bits")
    items = _dense_items(target, model, ops, bits, f"{bits:g}-bit weights, float32 biases")
    return {"weight_bits": bits, "per_inference_pj": sum(i["pj"] for i in items), "items": items}


def float_baseline(cpu: Target, model: TernaryModel, ops: list[LayerOps]) -> dict:
    """The same architecture in float32 on the `cpu` target: a MAC per connection, float32 weights and biases
    read once, float32 activations written and read once. No zeros are skipped (a float model has none)."""
    if cpu.value("activation_bits") != 32:
        raise ArtifactError(f"float baseline target {cpu.name!r} must have 32-bit activations")
    items = _dense_items(cpu, model, ops, 32, "float32 weights and biases")
    return {"target": cpu.name, "per_inference_pj": sum(i["pj"] for i in items), "items": items}
