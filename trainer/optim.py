"""`CoNNTrA`: the discrete-weight update rule as a `torch.optim.Optimizer`, for your own training loop and for
ternkit's (one implementation).

Per step: Adam on every continuous parameter (scales, biases, BatchNorm, float layers); for every discrete
weight (a `TernaryLinear`/`TernaryConv2d` trained with method="conntra"), a per-weight moving average M of
dL/dq (beta 0.99, reset when the weight moves) and of its square V rank the one-level moves against sign(M)
by |M| / sqrt(V); each layer applies its k best, k = f * n with f decaying exponentially from `frac_start`
to `frac_end` over `total_steps`. M, V and the signed proposal P are exactly an Adam step (betas 0.99, 0.999)
taken from 0 with rate 1, so one fused Adam kernel computes them in one pass.

The k best are found without sorting and without reading anything back to the host: a threshold t from the
scores of a fixed sample of positions (all of them in layers of up to 8,192 weights: then exact), and then
one dense, branch-free update moves every weight whose |P| reaches t one level toward sign(P), except where
q d = L (d = clamp(trunc(P / t), -1, 1)): the move would leave {-L..L}. t lies just above the (k+1)-th score,
so exact ties there (every |P| is 1 after the first step) do not all move at once: none of them moves.

That is the torch form (GPUs, and CPUs without a C compiler). On the CPU the same rule runs compiled
(`native.py`, `conntra_step.c`): one pass per weight tensor, every tensor of a step in one call, and the
continuous parameters' Adam in one call per group.

Which weights are discrete and their levels travel in the param groups (key "levels"); a technique that
trains a submatrix passes it for one step in a `StepContext`. All state lives in `self.state` and the param
groups, so `state_dict()`/`load_state_dict()` resume exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam as adam_kernel

from . import native
from .layers import QuantLayer, discrete_levels
from .step_context import StepContext

__all__ = ["CoNNTrA", "is_discrete", "StepContext"]

_GOLDEN = 0.6180339887498949
_SAMPLE = 8192  # positions a big layer's threshold is estimated from; smaller layers use all (exact)
_CHUNK = 64  # the sample is _SAMPLE // _CHUNK runs of _CHUNK neighbours: contiguous reads, not scattered ones
_FLOOR = 1e-20  # the least threshold: a weight with no evidence (P = 0) never moves
_ABOVE = 1 + 2 ** -22  # a threshold strictly above a score (2 to 4 float32 steps: P / t stays below 1)
# Adam's usual epsilon in |P| = |M^| / (sqrt(V^) + eps): after one step |M^| = sqrt(V^) = |g| everywhere, and
# with a negligible eps every |P| would be the same 1.0; this one ranks those by |g| (larger first)
_EPS = 1e-8


def is_discrete(p: torch.Tensor) -> bool:
    """Whether `p` is the integer weight of a ternkit layer trained with CoNNTrA."""
    return discrete_levels(p) is not None


def _gather(t: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    """A copy of t[rows][:, cols] (None: all)."""
    t = t if rows is None else t.index_select(0, rows)
    return t if cols is None else t.index_select(1, cols)


def _scatter(t: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None, part: torch.Tensor) -> None:
    """t[rows][:, cols] = part, in place: the inverse of _gather."""
    if rows is None:
        t.index_copy_(1, cols, part)
    elif cols is None:
        t.index_copy_(0, rows, part)
    else:
        t.index_put_((rows[:, None], cols[None, :]), part)


def _groups(params: nn.Module | Iterable[Any]) -> list[dict[str, Any]]:
    """Param groups with the discrete weights in groups of their own, tagged with their levels."""
    if isinstance(params, nn.Module):
        layers = [m for m in params.modules() if isinstance(m, QuantLayer) and m.parametrisation == "discrete"]
        levels = {id(m.weight): m.levels for m in layers}
        groups = [{"params": [p for p in params.parameters() if p.requires_grad]}]
    else:
        items = list(params)
        groups = [dict(g) for g in items] if items and isinstance(items[0], dict) else [{"params": items}]
        levels = {}
    out: list[dict[str, Any]] = []
    for g in groups:
        ps = list(g["params"]) if not isinstance(g["params"], torch.Tensor) else [g["params"]]
        if "levels" in g:
            out.append({**g, "params": ps})
            continue
        found = {id(p): levels.get(id(p), discrete_levels(p)) for p in ps}
        rest = [p for p in ps if found[id(p)] is None]
        if rest or not ps:
            out.append({**g, "params": rest})
        for lv in sorted({v for v in found.values() if v is not None}):
            out.append({**g, "params": [p for p in ps if found[id(p)] == lv], "levels": lv})
    return [g for g in out if g["params"]] or out[:1]


class CoNNTrA(torch.optim.Optimizer):
    """CoNNTrA for discrete weights, Adam for everything else.

    `params`: a model (its ternary layers are found) or an iterable of parameters / param groups (ternkit's
    discrete weights are recognised; a group with a "levels" key is discrete). `total_steps`: the number of
    `step()` calls planned (the move budget decays over them, like a scheduler's horizon); without it, as with
    any torch optimizer, the budget is constant, sqrt(frac_start * frac_end) of each layer's weights per step
    (1e-3 by default), and `lr_schedule` must be "constant". `lr` is Adam's rate
    for the continuous parameters; with `lr_schedule="cosine"` it follows a cosine to 0 over `total_steps` (a
    function of the step alone, so a resumed run continues exactly); with "constant" it is left to you (torch
    LR schedulers work). `step(context=...)` takes this step's `StepContext` (e.g. a submatrix to update).
    `kernel`: "auto" (default) steps CPU tensors with the compiled one-pass form (`trainer/native.py`) where a C
    compiler is found, else with torch operations; "native" or "torch" insist on one (same rule, float rounding
    apart: a given seed reproduces its weights within one form)."""

    def __init__(self, params: nn.Module | Iterable[Any], lr: float = 1e-3, *, total_steps: int | None = None,
                 frac_start: float = 1e-2, frac_end: float = 1e-4, beta: float = 0.99, beta2: float = 0.999,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 zero_bonus: float = 0.0, lr_schedule: str = "constant", kernel: str = "auto"):
        if kernel not in native.KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(native.KERNELS)}, got {kernel!r}")
        if kernel == "native" and native.library() is None:
            raise ValueError("kernel='native' needs a C compiler (cc) to build CoNNTrA's step; use 'auto' or 'torch'")
        if not 0 < frac_end <= frac_start <= 1:
            raise ValueError(f"need 0 < frac_end <= frac_start <= 1, got {frac_end}, {frac_start}")
        if total_steps is None and lr_schedule != "constant":
            raise ValueError("lr_schedule='cosine' needs total_steps (the run's length); or use a torch LR scheduler")
        if total_steps is not None and total_steps < 1 or lr <= 0 or lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"need total_steps >= 1, lr > 0, lr_schedule constant|cosine; got {total_steps}, {lr}, "
                             f"{lr_schedule!r}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(_groups(params), defaults)
        self.beta, self.beta2, self.frac_start, self.frac_end = beta, beta2, frac_start, frac_end
        self.total_steps = None if total_steps is None else max(1, int(total_steps))
        self.zero_bonus, self.lr_schedule, self.kernel = zero_bonus, lr_schedule, kernel
        self.step_index = 0
        self._moved: list[torch.Tensor | int] = []  # last step's |move| or count per layer (summed when asked)
        self._lists: dict[int, tuple] = {}  # per continuous group: its Adam lists (state tensors, not saved)
        self._samples: dict[tuple[int, torch.device], torch.Tensor] = {}
        self._context: StepContext | None = None
        self._buffers: dict[tuple[int, int], torch.Tensor] = {}  # scratch per weight, never saved
        self._sorted_samples: dict[int, torch.Tensor] = {}  # the CPU samples, sorted
        self._native_scratch: tuple[torch.Tensor, ...] | None = None
        self._step_views: dict[int, tuple[int, Any]] = {}  # numpy views of step counters, by their address

    @property
    def discrete(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups if "levels" in g for p in g["params"]]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self.param_groups[-1].setdefault("base_lr", self.param_groups[-1]["lr"])  # each group's own cosine start

    @property
    def moves_last_step(self) -> int:
        """Weights moved by the last step (reads the count back from the device: not for every step)."""
        return int(sum(d if isinstance(d, int) else int(d.sum()) for d in self._moved))

    # -- schedule -------------------------------------------------------------------------------------------
    def fraction(self) -> float:
        """Share of each layer's weights allowed to move this step (exponential decay over `total_steps`, or
        constant without it)."""
        if self.total_steps is None:
            return math.sqrt(self.frac_start * self.frac_end)
        t = min(1.0, self.step_index / max(1, self.total_steps - 1))
        return self.frac_start * (self.frac_end / self.frac_start) ** t

    def learning_rate(self, group: dict[str, Any]) -> float:
        if self.lr_schedule == "constant":
            return group["lr"]
        return 0.5 * group["base_lr"] * (1 + math.cos(math.pi * min(1.0, self.step_index / self.total_steps)))

    # -- the step -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None, *,
             context: StepContext | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._context = context
        try:
            self._step_continuous()
            self._step_discrete()
        finally:
            self._context = None
        self.step_index += 1
        return loss

    def _step_continuous(self) -> None:
        for group in self.param_groups:
            if "levels" in group:
                continue
            lists = self._adam_lists(group)
            if lists is None:
                continue
            ps, exp_avgs, exp_avg_sqs, steps = lists
            lr = self.learning_rate(group)
            if self.lr_schedule == "cosine":
                group["lr"] = lr
            lib = None if self.kernel == "torch" else native.library()
            if lib is not None and all(map(native.usable, ps, [p.grad for p in ps], exp_avgs, exp_avg_sqs)):
                self._adam_native(lib, group, ps, exp_avgs, exp_avg_sqs, lr)
                continue
            # fused: one pass over each tensor instead of ~8 (9x faster on a 784-800-800-10 MLP)
            adam_kernel(ps, [p.grad for p in ps], exp_avgs, exp_avg_sqs, [], steps, fused=True, amsgrad=False,
                        beta1=group["betas"][0], beta2=group["betas"][1], lr=lr, weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False)

    def _adam_native(self, lib: Any, group: dict[str, Any], ps: list[torch.Tensor], exp_avgs: list[torch.Tensor],
                     exp_avg_sqs: list[torch.Tensor], lr: float) -> None:
        """The compiled Adam, one call for the group: the small scales and biases of a ternary model cost more in
        torch's optimizer machinery than in arithmetic (same formulas as torch's Adam, float rounding apart)."""
        steps = []
        for p in ps:
            count = self._step_count(p)
            count += 1
            steps.append(float(count))
        beta1, beta2 = group["betas"]
        native.adam_tensors(lib, ps, [p.grad for p in ps], exp_avgs, exp_avg_sqs, steps=steps, beta1=beta1,
                            beta2=beta2, lr=lr, eps=group["eps"], weight_decay=group["weight_decay"])

    def _adam_lists(self, group: dict[str, Any]) -> tuple[list[torch.Tensor], ...] | None:
        """(params with a gradient, their exp_avg, exp_avg_sq, step): rebuilt only when that set changes (on a
        small model, rebuilding these lists every step cost more than Adam's own arithmetic)."""
        ps = [p for p in group["params"] if p.grad is not None]
        if not ps:
            return None
        key = tuple(map(id, ps))
        cached = self._lists.get(id(group))
        if cached is not None and cached[0] == key:
            return cached[1]
        for p in ps:
            st = self.state[p]
            if not st:
                st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        lists = (ps, [self.state[p]["exp_avg"] for p in ps], [self.state[p]["exp_avg_sq"] for p in ps],
                 [self.state[p]["step"] for p in ps])
        self._lists[id(group)] = (key, lists)
        return lists

    def _discrete_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        st = self.state[p]
        if not st:
            st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
            st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        return st

    def _step_discrete(self) -> None:
        frac, discrete = self.fraction(), self.discrete
        live = [(i, p, g["levels"]) for g in self.param_groups if "levels" in g
                for i, p in enumerate(g["params"]) if p.grad is not None]
        self._moved = []
        if not live:
            return
        # each layer's (q, M, V, dL/dq): the whole tensors, or copies of the submatrix that takes part in this
        # step (batchwise dropout) -- its other weights saw no data this step: averages and values stay
        parts = [self._part(p) for _, p, _ in live]
        lib = None if self.kernel == "torch" else native.library()
        if lib is not None and all(native.usable(*part) for part in parts):
            self._step_native(lib, live, parts, frac, discrete)
            return
        qs, ms, vs, gs = zip(*parts, strict=True)
        # the proposal starts from 0, in a buffer kept between steps (a fresh weight-sized tensor costs its
        # page faults on every step)
        props = [self._buffer(p, q) for (_, p, _), q in zip(live, qs, strict=True)]
        torch._foreach_zero_(props)
        adam_kernel(props, list(gs), list(ms), list(vs), [], [self.state[p]["step"] for _, p, _ in live],
                    fused=True, amsgrad=False, beta1=self.beta, beta2=self.beta2, lr=1.0, weight_decay=0.0,
                    eps=_EPS, maximize=False)
        moving = []  # (levels, q, M, P, k) of the layers with a budget this step
        index = {id(p): i for i, p in enumerate(discrete)}
        for (_, p, levels), q, m, prop in zip(live, qs, ms, props, strict=True):
            k = self._budget(index[id(p)], q.numel(), frac, len(discrete))
            if k >= 1:
                moving.append((levels, q, m, prop, k, self._scratch(p, q)))
        self._moved = self._move(moving, self._thresholds(moving) if moving else [])
        for (_, p, _), q, m, v in zip(live, qs, ms, vs, strict=True):
            active = self._active(p)
            if active is not None:
                for full, part in ((p.data, q), (self.state[p]["m"], m), (self.state[p]["v"], v)):
                    _scatter(full, *active, part)

    def _budget(self, index: int, n: int, frac: float, layers: int) -> int:
        """floor(f*n + u), u from a golden-ratio sequence: small layers still move at the right average rate,
        and every process of a data-parallel run draws the same u without sharing an RNG. `index`: the
        weight's place among the `layers` discrete weights."""
        u = (self.step_index * _GOLDEN + 0.5 * index / max(1, layers)) % 1.0
        return int(frac * n + u)

    def _sample(self, n: int, device: torch.device) -> torch.Tensor:
        """The chunk indices of a big tensor's fixed sample: seeded by its size alone, so the same on every
        process and after a resume; the torch form reads them as drawn, the compiled form in increasing order."""
        return self._fixed(self._samples, n, device,
                           lambda g: torch.randperm(n // _CHUNK, generator=g)[:_SAMPLE // _CHUNK])

    def _sample_chunks(self, n: int) -> torch.Tensor:
        """The fixed sample's chunk indices sorted (the compiled step walks the tensor in order)."""
        got = self._sorted_samples.get(n)
        if got is None:
            got = self._sorted_samples[n] = self._sample(n, torch.device("cpu")).sort().values
        return got

    def _step_count(self, p: torch.Tensor) -> Any:
        """A numpy view of p's step counter (float32, as Adam's): counting through it costs a microsecond,
        a torch operation on a 0-d tensor ten (the view shares the tensor's memory: state_dict sees it)."""
        step = self.state[p]["step"]
        got = self._step_views.get(id(p))
        if got is None or got[0] != step.data_ptr():  # a new counter (first step, a state loaded or replaced)
            got = self._step_views[id(p)] = (step.data_ptr(), step.numpy())
        return got[1]

    def _step_native(self, lib: Any, live: list[tuple], parts: list[tuple], frac: float,
                     discrete: list[torch.Tensor]) -> None:
        """The compiled one-pass step of every live tensor (one call for all), then the submatrices written
        back."""
        if self._native_scratch is None:
            self._native_scratch = (torch.empty(_SAMPLE), torch.empty(_SAMPLE), torch.zeros(1, dtype=torch.int64))
        pbuf, sbuf, whole = self._native_scratch
        index = {id(p): i for i, p in enumerate(discrete)}
        chunks, chunk, js, levels, steps, budgets = [], [], [], [], [], []
        for (_, p, lv), (q, _, _, _) in zip(live, parts, strict=True):
            count = self._step_count(p)
            count += 1
            n = q.numel()
            k = self._budget(index[id(p)], n, frac, len(discrete))
            if k < 1:  # no budget: the moments still move
                c, size, j = whole[:0], n, -1
            elif n > _SAMPLE:
                c, size = self._sample_chunks(n), _CHUNK
                j = min(c.numel() * _CHUNK, max(1, round(k * c.numel() * _CHUNK / n)))
            else:
                c, size, j = whole, n, min(n, k)
            chunks.append(c)
            chunk.append(size)
            js.append(j)
            levels.append(lv)
            steps.append(float(count))
            budgets.append(k)
        moved, _ = native.step_tensors(lib, parts, chunks=chunks, chunk=chunk, j=js, levels=levels, steps=steps,
                                       beta1=self.beta, beta2=self.beta2, eps=_EPS, bonus=self.zero_bonus,
                                       above=_ABOVE, floor=_FLOOR, pbuf=pbuf, sbuf=sbuf)
        self._moved = [m for m, k in zip(moved, budgets, strict=True) if k >= 1]
        for (_, p, _), (q, m, v, _) in zip(live, parts, strict=True):
            active = self._active(p)
            if active is not None:
                st = self.state[p]
                for full, part in ((p.data, q), (st["m"], m), (st["v"], v)):
                    _scatter(full, *active, part)

    def _active(self, p: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
        if self._context is not None and p in self._context.active:
            return self._context.active[p]
        return None

    def _part(self, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        st = self._discrete_state(p)
        tensors = (p.data, st["m"], st["v"], p.grad)
        active = self._active(p)
        return tensors if active is None else tuple(_gather(t, *active) for t in tensors)

    def _fixed(self, table: dict, n: int, device: torch.device, make: Callable[[torch.Generator], torch.Tensor]
               ) -> torch.Tensor:
        got = table.get((n, device))
        if got is None:  # seeded by the size alone: the same on every process and after a resume
            got = table[(n, device)] = make(torch.Generator().manual_seed(n)).to(device)
        return got

    def _buffer(self, p: torch.Tensor, q: torch.Tensor, role: int = 0) -> torch.Tensor:
        """A scratch tensor shaped like q, kept between steps for the whole weight p (never saved)."""
        if q.data_ptr() != p.data.data_ptr():  # a gathered submatrix: its size changes from step to step
            return torch.empty_like(q)
        buf = self._buffers.get((id(p), role))
        if buf is None or buf.shape != q.shape or buf.device != q.device:
            buf = self._buffers[(id(p), role)] = torch.empty_like(q)
        return buf

    def _scratch(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return self._buffer(p, q, 1)

    def _move(self, moving: list[tuple], ts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Move every weight whose |P| reaches its layer's t one level toward sign(P) unless that leaves
        {-L..L}; reset the M of those that moved. Returns |move| per layer. All layers at once (torch._foreach:
        one call per operation, not one per layer and operation)."""
        if not moving:
            return []
        levels = [lv for lv, *_ in moving]
        qs, ms, props, blocked = ([x[i] for x in moving] for i in (1, 2, 3, 5))
        if self.zero_bonus:  # a move onto 0 needs only t / (1 + bonus): scale its P instead (sign kept)
            for q, prop in zip(qs, props, strict=True):
                prop.mul_(torch.where((q * prop < 0) & (q.abs() == 1), 1 + self.zero_bonus, 1.0))
        torch._foreach_div_(props, ts)
        torch._foreach_trunc_(props)
        torch._foreach_clamp_min_(props, -1.0)
        torch._foreach_clamp_max_(props, 1.0)  # d: the proposed move, where the score reaches t
        torch._foreach_copy_(blocked, qs)
        torch._foreach_mul_(blocked, props)  # q d = L exactly where the move would leave {-L..L}
        if any(lv > 1 for lv in levels):
            torch._foreach_sub_(blocked, [float(lv - 1) for lv in levels])
        torch._foreach_clamp_min_(blocked, 0.0)
        torch._foreach_addcmul_(props, props, blocked, value=-1.0)  # the moves made
        torch._foreach_add_(qs, props)
        torch._foreach_abs_(props)
        torch._foreach_addcmul_(ms, ms, props, value=-1.0)  # M <- 0 where the weight moved
        return props

    def _thresholds(self, moving: list[tuple]) -> list[torch.Tensor]:
        """t per layer, just above the (k+1)-th largest score |P| among the possible moves: exact for
        layers of up to _SAMPLE weights, else from a fixed sample of _SAMPLE positions (then the expected
        number of weights above t is k). 0-d tensors on P's device: nothing is read back to the host. A group
        of exact ties at t (weights whose gradients differed only in size share |M|/sqrt(V)) does not move."""
        qs, ps, js = [], [], []
        for _, q, _, prop, k, _ in moving:
            q, p, n = q.reshape(-1), prop.view(-1), q.numel()
            if n > _SAMPLE:
                runs = n // _CHUNK
                idx = self._sample(n, q.device)
                q, p = (t[:runs * _CHUNK].view(runs, _CHUNK).index_select(0, idx).view(-1) for t in (q, p))
                js.append(min(len(q), max(1, round(k * len(q) / n))))
            else:
                js.append(min(n, k))
            qs.append(q)
            ps.append(p)
        levels = {lv for lv, *_ in moving}
        if len(levels) == 1:  # the usual case: one score computation for every layer
            scores = self._scores(levels.pop(), torch.cat(qs), torch.cat(ps)).split([len(q) for q in qs])
        else:
            scores = [self._scores(lv, q, p) for (lv, *_), q, p in zip(moving, qs, ps, strict=True)]
        ts = [torch.topk(sc, j + 1, sorted=False).values.min() if j < len(sc) else sc.new_zeros(())
              for sc, j in zip(scores, js, strict=True)]
        return list(torch.stack(ts).mul_(_ABOVE).clamp_min_(_FLOOR).unbind())

    def _scores(self, levels: int, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """|P| where the move toward sign(P) is possible, else 0: at the end of the range it is not -- q and P
        of the same sign and |q| == L (for ternary: |P| - relu(q P))."""
        qp = q * p
        # moves that land on 0: q == -sign(P) with |q| == 1 (taken before relu_ below clears qp < 0)
        onto_zero = (qp < 0) & (q.abs() == 1) if self.zero_bonus else None
        if levels == 1:
            score = p.abs().sub_(qp.relu_())
        else:
            score = p.abs().masked_fill_((qp > 0) & (q.abs() == levels), 0.0)
        if onto_zero is not None:
            score = torch.where(onto_zero, score * (1 + self.zero_bonus), score)
        return score

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["conntra"] = {"step_index": self.step_index}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("conntra", {"step_index": 0})
        super().load_state_dict(state_dict)
        self._lists.clear()  # the state tensors were replaced
        self._step_views.clear()
        self.step_index = int(extra["step_index"])
        # torch casts loaded state to each parameter's dtype and device; the step counters must stay float32
        for st in self.state.values():
            if "step" in st:
                st["step"] = st["step"].to(torch.float32)
