"""Process interfaces: a sample source, sigma-delta and integrate-and-fire neurons with a per-sample reset
and activity counters, and a readout that records one output vector per sample.

Why custom: samples are streamed through one compiled network, one every `window` timesteps and pipelined
(layer l works on sample k while layer l+1 works on sample k-1), so each neuron population must return to rest
after the last step of each sample, offset by its `phase` (its delay from the source; Lava's SigmaDelta has
no reset), activity must be counted
where it happens (reading spike records through Monitor is the slow path), and the readout must keep one
small vector per sample that a single `get()` returns at the end.
"""

from __future__ import annotations

import numpy as np

from ternkit.export.lava.compat import import_lava

import_lava()

from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.proc.sdn.process import ActivationMode, SigmaDelta  # noqa: E402

__all__ = ["SampleSource", "SigmaDeltaReset", "IntegrateFire", "Readout", "ActivationMode"]


class SampleSource(AbstractProcess):
    """Emits sample k during window k. mode "graded": the sample once, at the window's first step (a graded
    spike per input); mode "rate": evenly spaced unit spikes over the first `timesteps` steps, input j firing
    data[k, j] * timesteps // rate_den times."""

    def __init__(self, *, data: np.ndarray, window: int, mode: str = "graded", timesteps: int = 1,
                 rate_den: int = 1, **kwargs) -> None:
        super().__init__(data=data, window=window, mode=mode, timesteps=timesteps, rate_den=rate_den, **kwargs)
        self.s_out = OutPort(shape=data.shape[1:])
        self.data = Var(shape=data.shape, init=data)


class SigmaDeltaReset(SigmaDelta):
    """lava.proc.sdn SigmaDelta (graded spikes) plus: input right shift `in_shift` (fixed point), rest until
    step `phase` (when the first sample arrives; else it would send relu(bias) early), a state reset after the
    last step of every sample, and a per-neuron counter of messages sent (non-zero graded spikes)."""

    def __init__(self, *, shape: tuple[int, ...], vth: float, bias: np.ndarray | float = 0, window: int,
                 phase: int = 0, samples: int = 1, in_shift: int = 0,
                 act_mode: ActivationMode = ActivationMode.RELU, fixed: bool = True, **kwargs) -> None:
        super().__init__(shape=shape, vth=vth, bias=bias, act_mode=act_mode, window=window, in_shift=in_shift,
                         fixed=fixed, phase=phase, samples=samples, **kwargs)
        self.messages = Var(shape=shape, init=0)


class IntegrateFire(AbstractProcess):
    """Integrate-and-fire neuron (LIF with du = 1, dv = 0: no current memory, no leak) with reset by
    subtraction, at rest until step `phase` (its delay from the source), a membrane reset after the last
    step of every sample, and a per-neuron spike counter. Sends unit (binary) spikes. `in_shift` > 0 shifts
    the input right, < 0 left."""

    def __init__(self, *, shape: tuple[int, ...], vth: float, bias: np.ndarray | float = 0, window: int,
                 phase: int = 0, samples: int = 1, in_shift: int = 0, **kwargs) -> None:
        super().__init__(shape=shape, window=window, phase=phase, samples=samples, in_shift=in_shift, **kwargs)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=0)
        self.vth = Var(shape=(1,), init=vth)
        self.bias = Var(shape=shape, init=bias)
        self.messages = Var(shape=shape, init=0)


class Readout(AbstractProcess):
    """Integrates its input over each sample's `window` steps (from step `phase` on) and records acc + bias,
    one row per sample."""

    def __init__(self, *, shape: tuple[int], samples: int, window: int, phase: int, bias: np.ndarray | float = 0,
                 **kwargs) -> None:
        super().__init__(shape=shape, samples=samples, window=window, phase=phase, **kwargs)
        self.a_in = InPort(shape=shape)
        self.acc = Var(shape=shape, init=0)
        self.bias = Var(shape=shape, init=bias)
        self.out = Var(shape=(samples, shape[0]), init=0)
