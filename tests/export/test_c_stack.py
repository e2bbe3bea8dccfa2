"""The planned stack of tk_predict (export/c/stack.py): GCC's frames summed on the deepest call path, refused
for what GCC cannot bound; and, in qemu (`mcu`), against the painted-stack measure of the same build."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import random_mlp
from op_examples import conv, dense, example_input, example_model
from test_c_export import ALL, _image, _make, _model

from ternkit.core import INPUT, Flatten, Node, ReLU
from ternkit.export.c.build import build_m4, object_sizes, run_m4
from ternkit.export.c.emit import export_c
from ternkit.export.c.program import emulate
from ternkit.export.c.sim import simulate_c
from ternkit.export.c.stack import STACK_FLAGS, plan_stack

NO_ARM = shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None
qemu = pytest.mark.skipif(NO_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm (`make mcu-tools`)")


def _callgraph(tmp_path: Path, source: str) -> Path:
    """The .ci file the host GCC writes for `source` (the same flags build_m4 passes the cross-compiler)."""
    cc = shutil.which("gcc")
    if cc is None or subprocess.run([cc, *STACK_FLAGS, "-E", "-x", "c", "/dev/null", "-o", "/dev/null"]).returncode:
        pytest.skip("needs a GCC with -fcallgraph-info (GCC 10 or newer)")
    (tmp_path / "m.c").write_text(source)
    subprocess.run([cc, "-O1", *STACK_FLAGS, "-c", str(tmp_path / "m.c"), "-o", str(tmp_path / "m.o")], check=True)
    return tmp_path / "m.ci"


LEAF = "__attribute__((noinline)) int leaf(volatile int *p) { volatile int a[64]; a[p[0]] = 1; return a[p[1]]; }\n"


def test_plan_is_the_heaviest_path_of_static_frames(tmp_path):
    ci = _callgraph(tmp_path, LEAF + "__attribute__((noinline)) int mid(volatile int *p) { volatile int b[8]; "
                    "b[0] = leaf(p); return b[0] + 1; }\n"
                    "int tk_predict(volatile int *p) { return mid(p) + leaf(p); }\n")
    plan = plan_stack(ci)
    su = {ln.split("\t")[0].rsplit(":", 1)[1]: int(ln.split("\t")[1]) for ln in
          (tmp_path / "m.su").read_text().splitlines()}
    assert plan.path == ["tk_predict", "mid", "leaf"]
    assert plan.frames == [su["tk_predict"], su["mid"], su["leaf"]] and plan.bytes == sum(plan.frames)


@pytest.mark.parametrize("body,reason", [
    ("int tk_predict(int n) { volatile char v[n]; v[0] = 1; return v[n - 1]; }", "has a dynamic frame"),
    ("int tk_predict(int n) { return n ? tk_predict(n - 1) + 1 : 0; }", "recursion through tk_predict"),
    ("#include <string.h>\nint tk_predict(char *d, const char *s, int n) { memcpy(d, s, n); return d[0]; }",
     "memcpy is not compiled in model.c"),
    ("int tk_predict(int (*f)(int)) { return f(1) + 1; }", "not compiled in model.c"),
    ("int other(void) { return 1; }", "tk_predict is not in the call graph"),
])
def test_what_gcc_cannot_bound_is_left_unplanned(tmp_path, body, reason):
    plan = plan_stack(_callgraph(tmp_path, body + "\n"))
    assert plan.bytes is None and reason in plan.reason, plan


def test_no_call_graph_is_no_plan(tmp_path):
    plan = plan_stack(tmp_path / "model.ci")
    assert plan.bytes is None and "wrote no call graph" in plan.reason


def _node(title: str, size: int) -> str:
    return f'node: {{ title: "{title}" label: "{title}\\n{size} bytes (static)" }}\n'


def _edge(a: str, b: str) -> str:
    return f'edge: {{ sourcename: "{a}" targetname: "{b}" }}\n'


@pytest.mark.parametrize("what", ["deep", "binary", "huge", "text"])
def test_a_hostile_call_graph_in_a_build_folder_is_no_plan_and_no_crash(tmp_path, what):
    """`report --build DIR` reads DIR/model.ci, a file of the user's folder: a call chain deep enough to exhaust
    Python's recursion, bytes that are not UTF-8, a huge file, or names holding control characters and Markdown
    give no plan (or a plain one) in one line, never an exception."""
    ci = tmp_path / "model.ci"
    if what == "deep":
        names = ["tk_predict"] + [f"f{i}" for i in range(5000)]
        edges = "".join(_edge(a, b) for a, b in zip(names[:-1], names[1:], strict=True))
        ci.write_text("".join(_node(n, 8) for n in names) + edges)
    elif what == "binary":
        ci.write_bytes(b"\xff\xfe" + _node("tk_predict", 8).encode() + bytes(range(256)))
    elif what == "huge":
        with ci.open("wb") as f:
            f.truncate(17 << 20)
    else:
        evil = "x\x1b[31m\n# `pwn`|<script>"
        ci.write_text(_node("tk_predict", 8) + _node(evil, 16) + _edge("tk_predict", evil))
    plan = plan_stack(ci)
    if what == "text":
        assert plan.bytes == 24 and plan.path[0] == "tk_predict"
        assert all(ord(ch) >= 32 for name in plan.path for ch in name)
    elif what == "binary":
        assert plan.bytes == 8 and plan.path == ["tk_predict"]
    else:
        assert plan.bytes is None and "not a call graph of model.c" in plan.reason and "\n" not in plan.reason


def mnist_cnn(rng: np.random.Generator):
    """The MNIST CNN of docs/mcu.md (16c5s2p2-32c5s2p2-100, random trits): conv1 streams into conv2."""
    nodes = [Node("c1", conv(rng, 16, 1, (5, 5), (2, 2), (2, 2)), (INPUT,)), Node("r1", ReLU(), ("c1",)),
             Node("c2", conv(rng, 32, 16, (5, 5), (2, 2), (2, 2)), ("r1",)), Node("r2", ReLU(), ("c2",)),
             Node("f", Flatten(), ("r2",)), Node("d1", dense(rng, 100, 32 * 7 * 7), ("f",)),
             Node("r3", ReLU(), ("d1",)), Node("d2", dense(rng, 10, 100), ("r3",))]
    return _model(nodes, _image(1, 28, 28), 10)


NAMED = {"mnist-mlp": lambda: random_mlp((784, 256, 10)), "mnist-cnn": lambda: mnist_cnn(np.random.default_rng(0)),
         "depthwise": lambda: example_model("conv2d-depthwise"), "residual": lambda: example_model("add"),
         "mlp-783": lambda: random_mlp((783, 256, 10))}
# reserved bytes of the deepest frame, beyond its pad word, that only a path the model never takes writes: the
# 2-bit MLP's rows of four (tk_dot4 inlined into tk_dense_simd) spill one word in the partial weight byte's code,
# never run when every layer's columns are a multiple of four (784, 256); mlp-783 runs it and closes the gap
UNTAKEN = {("mnist-mlp", "2bit"): 4}


def _measure(model, packing: str, tmp_path: Path):
    x = example_input(model, 6)
    prog = export_c(model, tmp_path / "c", x, target="cortex-m4", packing=packing)
    art = build_m4(tmp_path / "c", tmp_path)
    run = run_m4(art["elf"], x, model.num_classes, tmp_path)
    np.testing.assert_array_equal(run.scores, emulate(prog, x))
    return prog, art, run, plan_stack(art["callgraph"])


@pytest.mark.mcu
@qemu
@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("name", sorted(NAMED))
def test_planned_ram_is_the_measured_ram(name, packing, tmp_path):
    """arena == bss, and planned stack == measured stack but for the one word the measure cannot see: the pad
    at the bottom of the deepest frame (AAPCS keeps sp 8-byte aligned; a pad word is reserved, never written,
    and the painted stack counts written words only), and the words of `UNTAKEN`. Every sample reaches the same
    depth."""
    prog, art, run, plan = _measure(NAMED[name](), packing, tmp_path)
    sec = object_sizes(art["object"])
    assert sec["data"] == 0 and sec["bss"] == prog.arena_bytes
    assert len(set(run.stack.tolist())) == 1
    untaken = UNTAKEN.get((name, packing), 0)
    assert plan.bytes - int(run.stack[0]) - untaken in (0, 4), (plan, run.stack[0], untaken)


@pytest.mark.mcu
@qemu
@pytest.mark.parametrize("packing", ["2bit", "base3"])
@pytest.mark.parametrize("name", sorted(ALL))
def test_planned_stack_bounds_the_measured_and_is_reached(name, packing, tmp_path):
    """Every example model: the plan is never exceeded, and the measure reaches into the deepest frame's level
    (beyond the frames above it). Where it stops short of the plan, the deepest path's last frame is reserved but
    not all written: its pad word, or spill slots only a path this model never takes writes (tk_dot's two-row
    loop when a group has one row). One deepest path cannot be reached at all: tk_dot4 (four output rows at
    once) when no conv group and no dense layer has four output rows; the measure then stops at the frames
    above it (less their own unwritten pad word), or inside tk_dot where that is a function of its own (2-bit)
    at the same depth."""
    prog, _, run, plan = _measure(_make(name), packing, tmp_path)
    measured, above = int(run.stack.max()), sum(plan.frames[:-1])
    assert measured <= plan.bytes, (plan, measured)
    if plan.path[-1] == "tk_dot4" and not _four_rows(prog):
        assert 0 <= above - measured <= 4 or measured > above, (plan, measured)
    else:
        assert measured > above, (plan, measured)


def _four_rows(prog) -> bool:
    """Whether a SIMD dot product of four rows runs: a dense layer or a (not depthwise) conv group of >= 4."""
    for st in prog.steps:
        w = getattr(st.op, "weight", None)
        if not st.simd or w is None:
            continue
        rows = w.shape[0] // (st.op.groups if st.kind == "conv2d" else 1)
        depthwise = st.kind == "conv2d" and w.shape[1] == 1 and w.shape[0] == st.op.groups
        if rows >= 4 and not depthwise:
            return True
    return False


@pytest.mark.mcu
@qemu
def test_simulate_record_carries_planned_beside_measured(tmp_path):
    model = example_model("conv2d-depthwise")
    x = example_input(model, 6)
    rec = simulate_c(model, x, None, "cortex-m4", x, build_dir=tmp_path / "b")
    m = rec["mcu"]
    assert m["ram_planned_bytes"] == m["arena_bytes"] + m["stack_planned_bytes"]
    assert m["ram_bytes"] == m["static_ram_bytes"] + m["stack_bytes"] <= m["ram_planned_bytes"]
    assert m["stack_path"][0].startswith("tk_predict ") and set(m["planned"]) == {
        "arena_bytes", "stack_planned_bytes", "ram_planned_bytes"}
    assert (tmp_path / "b" / "model.ci").is_file()

