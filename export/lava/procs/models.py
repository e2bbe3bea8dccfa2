"""CPU process models (fixed point and floating point) for the processes in `processes.py`."""

from __future__ import annotations

import numpy as np

from ternkit.export.lava.compat import import_lava

import_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.sdn.models import AbstractSigmaDeltaModel  # noqa: E402

from ternkit.export.lava.procs.processes import IntegrateFire, Readout, SampleSource, SigmaDeltaReset  # noqa: E402

__all__ = ["PySampleSourceFixed", "PySampleSourceFloat", "PySigmaDeltaResetFixed", "PySigmaDeltaResetFloat",
           "PyIntegrateFireFixed", "PyIntegrateFireFloat", "PyReadoutFixed", "PyReadoutFloat"]


class _SampleSource(PyLoihiProcessModel):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        p = self.proc_params
        self.window, self.mode, self.timesteps, self.rate_den = p["window"], p["mode"], p["timesteps"], p["rate_den"]

    def run_spk(self) -> None:
        k, s = divmod(self.time_step - 1, self.window)
        out = np.zeros(self.s_out.shape, dtype=self.data.dtype)
        if k < len(self.data):
            if self.mode == "graded":
                if s == 0:
                    out = self.data[k]
            elif s < self.timesteps:
                d = self.data[k]
                out = ((s + 1) * d // self.rate_den - s * d // self.rate_den).astype(self.data.dtype)
        self.s_out.send(out)


@implements(proc=SampleSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySampleSourceFixed(_SampleSource):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    data: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)


@implements(proc=SampleSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySampleSourceFloat(_SampleSource):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    data: np.ndarray = LavaPyType(np.ndarray, float)


class _ResetCount:
    """Shared: the step relative to this layer's phase (None before its first sample arrives), counting
    non-zero messages, and the reset after the last step of each sample."""

    def _rel(self) -> int | None:
        s = self.time_step - 1 - self.proc_params["phase"]
        return s if s >= 0 else None

    def _after(self, s_out: np.ndarray, state: tuple[str, ...], rel: int) -> None:
        if rel // self.proc_params["window"] < self.proc_params["samples"]:  # not the empty tail after the last
            self.messages += s_out != 0
        if rel % self.proc_params["window"] == self.proc_params["window"] - 1:
            for name in state:
                getattr(self, name)[...] = 0


def _sd_types(t: type, prec: int | None = 24) -> dict:
    """The LavaPyType declarations of lava's SigmaDelta models (fixed: int32 24-bit state, 16-bit bias)."""
    kw = {"precision": prec} if prec else {}
    return {"a_in": LavaPyType(PyInPort.VEC_DENSE, t, **kw), "s_out": LavaPyType(PyOutPort.VEC_DENSE, t, **kw),
            **{v: LavaPyType(np.ndarray, t, **kw) for v in ("vth", "sigma", "act", "residue", "error", "bias")},
            "spike_exp": LavaPyType(np.ndarray, np.int32, precision=3),
            "state_exp": LavaPyType(np.ndarray, np.int32, precision=3),
            "cum_error": LavaPyType(np.ndarray, bool, precision=1),
            "messages": LavaPyType(np.ndarray, np.int64, precision=64)}


class _SigmaDeltaReset(AbstractSigmaDeltaModel, _ResetCount):
    def run_spk(self) -> None:
        p = self.proc_params
        a_in, rel = self.a_in.recv(), self._rel()
        if rel is None:  # before the first sample reaches this layer: stay at rest (do not send relu(bias))
            self.s_out.send(np.zeros_like(a_in))
            return
        if np.any(p["in_shift"]):  # one shift, or one per neuron (per channel: the last axis)
            a_in = np.right_shift(a_in, np.asarray(p["in_shift"], a_in.dtype))
        s_out = self.dynamics(a_in)
        if p["fixed"]:
            s_out = np.right_shift(s_out, self.state_exp)
        self.s_out.send(s_out)
        self._after(s_out, ("sigma", "act", "residue", "error"), rel)


PySigmaDeltaResetFixed = tag("fixed_pt")(requires(CPU)(implements(proc=SigmaDeltaReset, protocol=LoihiProtocol)(
    type("PySigmaDeltaResetFixed", (_SigmaDeltaReset,), {**_sd_types(np.int32), "__module__": __name__}))))
PySigmaDeltaResetFloat = tag("floating_pt")(requires(CPU)(implements(proc=SigmaDeltaReset, protocol=LoihiProtocol)(
    type("PySigmaDeltaResetFloat", (_SigmaDeltaReset,), {**_sd_types(float, None), "__module__": __name__}))))


class _IntegrateFire(PyLoihiProcessModel, _ResetCount):
    def _input(self) -> np.ndarray:
        return self.a_in.recv()

    def run_spk(self) -> None:
        a_in, rel = self._input(), self._rel()
        if rel is None:
            self.s_out.send(np.zeros(self.v.shape, self.v.dtype))
            return
        self.v += a_in + self.bias
        spikes = self.v >= self.vth[0]
        self.v -= spikes * self.vth[0]  # reset by subtraction keeps the overshoot
        self.s_out.send(spikes.astype(self.v.dtype))
        self._after(spikes, ("v",), rel)


@implements(proc=IntegrateFire, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIntegrateFireFixed(_IntegrateFire):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    messages: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)

    def _input(self) -> np.ndarray:
        a, sh = self.a_in.recv(), self.proc_params["in_shift"]
        return np.right_shift(a, sh) if sh > 0 else np.left_shift(a, -sh) if sh < 0 else a


@implements(proc=IntegrateFire, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyIntegrateFireFloat(_IntegrateFire):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    messages: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)


class _Readout(PyLoihiProcessModel):
    def run_spk(self) -> None:
        a_in, rel = self.a_in.recv(), self.time_step - 1 - self.proc_params["phase"]
        if rel < 0:
            return
        self.acc += a_in
        k, s = divmod(rel, self.proc_params["window"])
        if s == self.proc_params["window"] - 1:
            if k < len(self.out):
                self.out[k] = self.acc + self.bias
            self.acc[...] = 0


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_Readout):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)
    out: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=64)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(_Readout):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    out: np.ndarray = LavaPyType(np.ndarray, float)
