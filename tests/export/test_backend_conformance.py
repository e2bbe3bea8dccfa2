"""Conformance of every registered backend (ternkit's own, the toy one from tests/, and any installed through
the `ternkit.backends` entry point) over every example model (`op_examples.MODELS`).

What a backend cannot do is read from its own declarations, never from lists here (scikit-learn's
`_xfail_checks` pattern): an operation in `Backend.refusals` must be refused in one line with its hint; one the
backend neither handles nor refuses must be refused in one line naming it; everything else must export, and
simulate with an activity record that `ternkit report` accepts, agreeing with `TernaryModel.forward` on at least
`Backend.agreement` of the samples -- or, for a kind it takes only in some forms (`Backend.limits`), be refused in
one line with the words it declares. A backend whose `require` fails (an optional dependency missing) is skipped
with its line as the reason. The marks below only say how long a backend takes, not what it may skip."""

from __future__ import annotations

import numpy as np
import pytest
import toy_backend  # noqa: F401  -- registers "toy" from outside ternkit's source
from op_examples import MODELS, example_input, example_model

from ternkit.core import TernkitError, UnsupportedError, load_dataset
from ternkit.core.activity_schema import parse
from ternkit.core.ops import OPS
from ternkit.export import backends, export_model, simulate

BACKENDS = backends()
# cost, not correctness: the Lava simulator starts processes per model; cortex-m4 needs the Arm tools and qemu
SLOW = {"lava": pytest.mark.slow, "cortex-m4": pytest.mark.mcu,
        "hls4ml": pytest.mark.slow}  # hls4ml compiles a C++ emulation per model (~5-40 s each)


def _params(stage: str) -> list:
    return [pytest.param(n, marks=[SLOW[n]] if n in SLOW and stage == "simulate" else [])
            for n, b in BACKENDS.items() if getattr(b, stage) is not None]


def _require(b, stage: str) -> None:
    try:
        b.check_require(stage)
    except TernkitError as e:
        pytest.skip(f"{b.name}: {e}")


def _unsupported(b, model) -> str | None:
    """The first operation (in node order) that `b` cannot run, or None."""
    handled = set(b.handlers())
    return next((n.op.kind for n in model.nodes if n.op.kind not in handled), None)


def _expect_refusal(b, kind: str, excinfo) -> None:
    line = str(excinfo.value)
    assert "\n" not in line and repr(kind) in line, line
    if kind in b.refusals:
        assert b.refusals[kind] in line, line


def _run(b, model, call):
    """`call()`, or None where the backend refuses a form of a kind it declares in `limits` (one line, with the
    declared words); any other UnsupportedError fails the test."""
    try:
        return call()
    except UnsupportedError as e:
        line = str(e)
        kinds = {n.op.kind for n in model.nodes}
        if "\n" not in line and any(k in kinds and words in line for k, words in b.limits.items()):
            return None
        raise


def _options(b, stage: str, x: np.ndarray) -> dict:
    declared = {o.dest for o in (b.export_options if stage == "export" else b.simulate_options)}
    return {"calibrate": x} if "calibrate" in declared else {}


@pytest.mark.parametrize("name", list(BACKENDS))
def test_declarations(name):
    b = BACKENDS[name]
    handled, refused = set(b.handlers()), set(b.refusals)
    assert not handled & refused, f"{name} both handles and refuses {handled & refused}"
    assert set(b.limits) <= handled, f"{name} limits kinds it does not handle: {set(b.limits) - handled}"
    assert all(isinstance(w, str) and w.strip() and "\n" not in w for w in b.limits.values())
    assert handled <= set(OPS), f"{name} has handlers for unregistered operations {handled - set(OPS)}"
    assert all(isinstance(h, str) and h.strip() and "\n" not in h for h in b.refusals.values())
    assert 0 < b.agreement <= 1


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", _params("export"))
def test_export(tmp_path, name, model_name):
    b = BACKENDS[name]
    _require(b, "export")
    model = example_model(model_name)
    out = tmp_path / b.default_out
    opts = _options(b, "export", example_input(model, 64, seed=3))
    kind = _unsupported(b, model)
    if kind is not None:
        with pytest.raises(UnsupportedError) as e:
            export_model(name, model, out, **opts)
        _expect_refusal(b, kind, e)
        assert not out.exists()
        return
    written = _run(b, model, lambda: export_model(name, model, out, **opts))
    if written is None:  # a declared limit
        assert not out.exists()
        return
    assert written.paths and all(p.exists() for p in written.paths)
    assert written.summary.strip()


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", _params("simulate"))
def test_simulate(name, model_name):
    b = BACKENDS[name]
    _require(b, "simulate")
    model = example_model(model_name)
    x = example_input(model, 48)
    data = load_dataset((x, np.arange(len(x)) % model.num_classes))
    opts = _options(b, "simulate", example_input(model, 64, seed=3))
    kind = _unsupported(b, model)
    if kind is not None:
        with pytest.raises(UnsupportedError) as e:
            simulate(model, data, name, **opts)
        _expect_refusal(b, kind, e)
        return
    r = _run(b, model, lambda: simulate(model, data, name, **opts))
    if r is None:  # a declared limit
        return
    parsed = parse(r, f"the {name} record")  # what `ternkit report --activity` accepts
    assert parsed["backend"] == name and parsed["samples"] == len(x)
    assert parsed["agreement"] >= b.agreement, f"{name} agrees on {parsed['agreement']:.3f} of {model_name}"
