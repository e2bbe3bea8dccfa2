"""export/activity.py: the per-neuron fan-out a Lava graph is built from and the frame-based record agree with
the artifact's own counts (`model.counts()`), for every operation example."""

from __future__ import annotations

import numpy as np
import pytest
from op_examples import MODELS, example_input, example_model

from ternkit.core.activity_schema import parse
from ternkit.core.metrics import synaptic_nodes
from ternkit.core.ops.conv2d import conv_fan_out
from ternkit.export.activity import activations_activity, activity_record


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fan_out_sums_to_the_nonzero_connections(name):
    model = example_model(name)
    shapes = model.shape_map()
    for n, c in zip(model.nodes, model.counts(), strict=True):
        if n.op.has_weights:
            fan = (conv_fan_out(n.op.weight, shapes[n.inputs[0]], n.op.stride, n.op.padding) if n.op.kind == "conv2d"
                   else (np.asarray(n.op.weight) != 0).sum(0))
            assert fan.size == int(np.prod(shapes[n.inputs[0]]))
            assert int(fan.sum()) == c.nonzero  # grouped and depthwise convs reach only their group


@pytest.mark.parametrize("name", sorted(MODELS))
def test_frame_based_record_is_valid_and_counts_from_the_artifact(name):
    model = example_model(name)
    x = example_input(model, 8)
    entries, macs = activations_activity(model, x)
    counts = model.counts()
    assert [e["index"] for e in entries] == synaptic_nodes(model)
    assert macs == sum(c.connections for c in counts)
    for e in entries:
        c = counts[e["index"]]
        assert (e["connections"], e["nonzero_connections"], e["neurons"]) == (c.connections, c.nonzero, c.outputs)
        assert e["synaptic_ops_per_inference"] <= c.nonzero
    rec = activity_record(backend="onnx", neuron=None, timesteps=1, samples=len(x), accuracy=None, agreement=1.0,
                          samples_per_second=1.0, layers=entries, dense_macs=macs)
    fields = parse(rec, "test")  # the reader targets use accepts what the writer writes
    assert fields["dense_macs"] == macs and len(fields["layers"]) == len(entries)

