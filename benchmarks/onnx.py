"""ONNX export benchmark: file size, parity, latency, throughput and peak memory under onnxruntime.

    .venv/bin/python benchmarks/onnx.py [--mlp M.tern] [--cnn C.tern] [--test idx:DIR] [--calls 1000]
                                        [--part formats,nbits]

Without --mlp/--cnn it trains MLP 784-256-10 and CNN 8c5s2-16c5s2-64 (CoNNTrA, mnist-sample) with the
CLI first. Part `formats`: for each model INT2 (default), int8 and float32 exports, each in our `exact`
session and onnxruntime's `stock` defaults, plus alternative graph forms that keep 2-bit storage on disk
(`int2-cast`, and `DequantizeLinear -> MatMul`). Part `nbits`: `--nbits` (MatMulNBits) vs INT2 vs float32 in
the same session options, on the trained MLP and CNN plus random ternary MLPs 784-1024-1024-10 and
784-4096-4096-10, batch 1/16/256, one thread and all threads; parity of --nbits on the test set; the two
convolution forms (Cast->Conv vs im2col->MatMulNBits); peak RSS of a process running each export of the
4096-wide MLP minus onnxruntime alone. Prints tables and writes benchmarks/out/onnx.json (onnx_nbits.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# this file is named onnx.py: keep its own folder off sys.path so `import onnx` finds the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper  # noqa: E402

from ternkit.core import Dense, load_dataset, load_model  # noqa: E402
from ternkit.core.io import pack_ints  # noqa: E402
from ternkit.export.onnx.export import onnx_bytes  # noqa: E402
from ternkit.export.onnx.infer import make_session, session_options  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would inherit this process's peak
MEM_SCRIPT = r"""
import sys, numpy as np, onnxruntime as ort
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
base = hwm()
path, mode, shape = sys.argv[1], sys.argv[2], tuple(int(d) for d in sys.argv[3].split(","))
opts = set(sys.argv[6].split(",")) if len(sys.argv) > 6 else set()
dt = 0.0
if path != "-":
    so = ort.SessionOptions(); so.log_severity_level = 3
    if mode == "exact":
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    if "no-arena" in opts:
        so.enable_cpu_mem_arena = False
    if "no-prepacking" in opts:
        so.add_session_config_entry("session.disable_prepacking", "1")
    if "device-allocator" in opts:
        so.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
    so.intra_op_num_threads = int(sys.argv[4])
    src = path
    if "bytes" in opts:  # read the file ourselves, hand onnxruntime the bytes, free them after
        with open(path, "rb") as f:
            src = f.read()
    s = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    del src
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 256
    x = np.random.default_rng(0).normal(size=(batch, *shape)).astype(np.float32)
    import time
    for i in range(20):
        if i == 5:
            t = time.perf_counter()
        s.run(None, {s.get_inputs()[0].name: x})
    dt = (time.perf_counter() - t) / 15
print(base, hwm(), dt)
"""


def train(spec: str, out: Path, epochs: int) -> Path:
    if not out.exists():
        subprocess.run([sys.executable, "-m", "ternkit", "train", "--dataset", "mnist-sample", "--model", spec,
                        "--method", "conntra", "--epochs", str(epochs), "--seed", "0", "--quiet", "--out", str(out)],
                       check=True)
    return out


def dq_matmul(model) -> bytes:
    """The INT2 export with every Dense rewritten as DequantizeLinear(axis=1) on the transposed weight ->
    MatMul -> Add: the form onnxruntime's stock options turn into MatMulNBits (benchmark only)."""
    m = onnx.load_from_string(onnx_bytes(model, "int2")[0])
    inits = {t.name: t for t in m.graph.initializer}
    nodes = []
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear":
            i = int(n.input[0][5:].split("_")[0])  # initializer names are layer{i}_weight_q
            if isinstance(model.layers[i], Dense):
                q = np.ascontiguousarray(model.layers[i].weight.T)
                w = inits[n.input[0]]
                w.ClearField("dims")
                w.dims.extend(q.shape)
                w.raw_data = pack_ints(q, 2).tobytes()
                n.attribute[0].i = 1
        if n.op_type == "Gemm":
            mm = n.output[0] + "_mm"
            nodes += [helper.make_node("MatMul", n.input[:2], [mm]),
                      helper.make_node("Add", [mm, n.input[2]], [n.output[0]])]
        else:
            nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def timing(sessions: dict, shape: tuple[int, ...], calls: int, batches: int = 40) -> dict:
    """Median batch-1 latency and batch-256 throughput of every session, measured round-robin (one call of
    each session in turn) so that load from other processes on this shared machine hits all variants alike."""
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(1, *shape)).astype(np.float32)
    xb = rng.normal(size=(256, *shape)).astype(np.float32)
    feeds = {k: (s, s.get_inputs()[0].name) for k, s in sessions.items()}
    for sess, name in feeds.values():  # warm up
        for _ in range(50):
            sess.run(None, {name: x1})
        sess.run(None, {name: xb})
    lat: dict = {k: [] for k in sessions}
    thr: dict = {k: [] for k in sessions}
    for _ in range(calls):
        for k, (sess, name) in feeds.items():
            t = time.perf_counter()
            sess.run(None, {name: x1})
            lat[k].append(time.perf_counter() - t)
    for _ in range(batches):
        for k, (sess, name) in feeds.items():
            t = time.perf_counter()
            sess.run(None, {name: xb})
            thr[k].append(256 / (time.perf_counter() - t))
    return {k: {"latency_us": statistics.median(lat[k]) * 1e6, "latency_calls": len(lat[k]),
                "throughput_per_s": statistics.median(thr[k]), "throughput_batches": len(thr[k])} for k in sessions}


def peak_rss(path: str, mode: str, shape: tuple[int, ...], threads: int, batch: int = 256,
             opts: str = "", timed: bool = False):
    """(VmHWM after importing onnxruntime, VmHWM at the end) in KiB of a fresh process that loads `path` and runs
    20 batches (`opts`: comma-separated session variants, see MEM_SCRIPT); with `timed`, also seconds per call."""
    p = subprocess.run([sys.executable, "-c", MEM_SCRIPT, path, mode, ",".join(map(str, shape)), str(threads),
                        str(batch), opts],
                       capture_output=True, text=True, check=True, cwd=OUT)
    base, peak, dt = p.stdout.split()
    return (int(base), int(peak), float(dt)) if timed else (int(base), int(peak))


def bench_model(name: str, tern: Path, test, calls: int, threads: int) -> dict:
    model = load_model(tern)
    shape = tuple(model.input.shape)
    ref = np.concatenate([model.forward(test.x[i:i + 1000]) for i in range(0, len(test), 1000)])
    graphs = {f: onnx_bytes(model, f)[0] for f in ("int2", "int8", "float")}  # the three CLI formats
    graphs["int2/dq-matmul"] = dq_matmul(model)
    graphs["int2-cast"] = onnx_bytes(model, "int2-cast")[0]
    rows, sessions = {}, {}
    for form, data in graphs.items():
        path = OUT / f"onnx_{name}_{form.replace('/', '_')}.onnx"
        path.write_bytes(data)
        for mode in ("exact", "stock"):
            sess = sessions[form, mode] = make_session(data, mode, threads)
            iname = sess.get_inputs()[0].name
            out = np.concatenate([sess.run(None, {iname: test.x[i:i + 1000]})[0] for i in range(0, len(test), 1000)])
            base, peak = peak_rss(str(path), mode, shape, threads)
            so = session_options(mode, threads)
            so.optimized_model_filepath = str(OUT / "onnx_optimised.onnx")
            ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
            ops = sorted({n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node})
            rows[form, mode] = {"model": name, "form": form, "session": mode, "bytes": len(data),
                                "agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
                                "max_abs_diff": float(np.abs(out - ref).max()),
                                "accuracy": float((out.argmax(1) == test.y).mean()),
                                "peak_rss_kib": peak, "runtime_only_rss_kib": base, "optimised_ops": ops}
    for key, t in timing(sessions, shape, calls).items():
        rows[key].update(t)
    return {"model": name, "file": str(tern), "layers": [type(x).__name__ for x in model.layers],
            "weights": model.num_weights(), "reference_accuracy": float((ref.argmax(1) == test.y).mean()),
            "rows": list(rows.values())}


def random_mlp(sizes: tuple[int, ...], seed: int = 0):
    """A random ternary MLP (a third zeros, per-row scales): speed does not depend on training."""
    from ternkit.core import InputSpec, ReLU, TernaryModel

    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.choice(np.array([-1, 0, 1], np.int8), size=(b, a))
        layers.append(Dense(w, (rng.uniform(0.5, 1.5, b) / np.sqrt(a)).astype(np.float32),
                            rng.normal(0, 0.1, b).astype(np.float32)))
        if i < len(sizes) - 2:
            layers.append(ReLU())
    spec = InputSpec((sizes[0],), np.zeros(sizes[0], np.float32), np.ones(sizes[0], np.float32))
    return TernaryModel(layers, spec, [str(i) for i in range(sizes[-1])])


def round_robin(sessions: dict, x: np.ndarray, budget_s: float = 1.5, most: int = 400) -> dict:
    """Median seconds per call of every session, called in turn (load from other jobs hits all alike)."""
    feeds = {k: (s, s.get_inputs()[0].name) for k, s in sessions.items()}
    slowest = 0.0
    for sess, name in feeds.values():  # warm up, and size the run to the budget
        for _ in range(3):
            t = time.perf_counter()
            sess.run(None, {name: x})
            slowest = max(slowest, time.perf_counter() - t)
    calls = int(max(5, min(most, budget_s / max(slowest * len(feeds), 1e-9))))
    ts: dict = {k: [] for k in feeds}
    for _ in range(calls):
        for k, (sess, name) in feeds.items():
            t = time.perf_counter()
            sess.run(None, {name: x})
            ts[k].append(time.perf_counter() - t)
    return {k: (statistics.median(v), len(v)) for k, v in ts.items()}


# form -> (format, conv form, nbits_min_weights); nbits/all = every dense layer as MatMulNBits (no per-layer rule)
NBITS_FORMS = {"nbits": ("nbits", "conv", None), "nbits/all": ("nbits", "conv", 0), "int2": ("int2", "conv", None),
               "float": ("float", "conv", None)}


def _nbits_data(model, fmt: str, conv_form: str, min_weights: int | None) -> bytes:
    kw = {} if min_weights is None else {"nbits_min_weights": min_weights}
    return onnx_bytes(model, fmt, conv_form=conv_form, **kw)[0]


def bench_nbits_speed(name: str, model, threads_list: list[int], batches=(1, 16, 256),
                      forms: dict = NBITS_FORMS, session: str = "exact", variant=None) -> list[dict]:
    shape = tuple(model.input.shape)
    data = {f: _nbits_data(model, *spec) for f, spec in forms.items()}
    rows = []
    for threads in threads_list:
        sessions = {f: make_session(d, session, threads) for f, d in data.items()}
        if variant is not None:
            sessions = {f: ort.InferenceSession(d, variant(threads), providers=["CPUExecutionProvider"])
                        for f, d in data.items()}
        for batch in batches:
            x = np.random.default_rng(0).normal(size=(batch, *shape)).astype(np.float32)
            t = round_robin(sessions, x)
            for f in forms:
                rows.append({"model": name, "form": f, "session": session, "threads": threads, "batch": batch,
                             "bytes": len(data[f]), "seconds": t[f][0], "calls": t[f][1],
                             "samples_per_s": batch / t[f][0], "x_float": t["float"][0] / t[f][0]})
    return rows


def _variant(name: str):
    """Session options to try against per-call overhead, on top of `exact`; each is used for every form."""
    def make(threads: int):
        so = session_options("exact", threads)
        if name == "no-spinning":
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        elif name == "extended":
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        elif name == "basic":
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        elif name == "no-mem-pattern":
            so.enable_mem_pattern = False
        return so
    return make


SESSION_VARIANTS = ("exact", "no-spinning", "extended", "basic", "no-mem-pattern")


def bench_session_options(models: dict) -> list[dict]:
    """nbits vs float32 at batch 1, one thread, under each SESSION_VARIANTS entry (the same options for both)."""
    rows = []
    forms = {"nbits": NBITS_FORMS["nbits"], "float": NBITS_FORMS["float"]}
    for name, model in models.items():
        for v in SESSION_VARIANTS:
            for r in bench_nbits_speed(name, model, [1], batches=(1,), forms=forms, variant=_variant(v)):
                rows.append({**r, "session": v})
    return rows


def nbits_parity(name: str, model, test) -> dict:
    from ternkit.export.onnx.export import export_onnx
    from ternkit.export.onnx.infer import OnnxModel

    path = OUT / f"onnx_{name}_nbits.onnx"
    r = export_onnx(model, path, "nbits")
    ref = np.concatenate([model.forward(test.x[i:i + 1000]) for i in range(0, len(test), 1000)])
    out = OnnxModel(path).forward(test.x)
    d = np.abs(out - ref).max(1)
    return {"model": name, "n": len(test), "agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_diff": float(d.max()), "p99_abs_diff": float(np.quantile(d, 0.99)),
            "median_abs_diff": float(np.median(d)), "max_abs_logit": float(np.abs(ref).max()),
            "accuracy": float((out.argmax(1) == test.y).mean()),
            "reference_accuracy": float((ref.argmax(1) == test.y).mean()), "export_check_diff": r.max_abs_diff}


def nbits_memory(name: str, model, threads: int) -> list[dict]:
    """Peak RSS minus two baselines: a process that only imports onnxruntime (`model_rss_kib`), and one that also
    loads and runs a trivial model, 784-16-10 as float32 (`model_rss_session_kib`): onnxruntime's own session
    state and the code pages a run touches, which every model pays whatever its size."""
    shape = tuple(model.input.shape)
    base = peak_rss("-", "exact", shape, threads)[1]
    tiny = OUT / "onnx_tiny_float.onnx"
    tiny.write_bytes(onnx_bytes(random_mlp((shape[0], 16, 10)), "float")[0])
    session_base = {b: peak_rss(str(tiny), "exact", shape, threads, b)[1] for b in (1, 256)}
    tiny.unlink()
    rows = []
    for form in ("nbits", "int2", "float"):
        path = OUT / f"onnx_{name}_{form}.onnx"
        path.write_bytes(onnx_bytes(model, form)[0])
        for batch in (1, 256):
            peak = peak_rss(str(path), "exact", shape, threads, batch)[1]
            rows.append({"model": name, "form": form, "options": "", "batch": batch, "bytes": path.stat().st_size,
                         "peak_rss_kib": peak, "runtime_only_rss_kib": base, "model_rss_kib": peak - base,
                         "session_only_rss_kib": session_base[batch],
                         "model_rss_session_kib": peak - session_base[batch]})
        if form == "nbits":  # the session variants that might cut the load-time copies (batch 1, timed)
            for opts in ("", "bytes", "no-arena", "device-allocator", "no-prepacking", "no-arena,device-allocator"):
                _, peak, dt = peak_rss(str(path), "exact", shape, threads, 1, opts, timed=True)
                rows.append({"model": name, "form": form, "options": opts or "default (path)", "batch": 1,
                             "bytes": path.stat().st_size, "peak_rss_kib": peak, "runtime_only_rss_kib": base,
                             "model_rss_kib": peak - base, "session_only_rss_kib": session_base[1],
                             "model_rss_session_kib": peak - session_base[1], "seconds_per_call": dt})
        path.unlink()
    for r in rows:
        f32 = next(x for x in rows if x["form"] == "float" and x["batch"] == r["batch"])
        r["vs_float"] = r["model_rss_kib"] / f32["model_rss_kib"]
        r["vs_float_session"] = r["model_rss_session_kib"] / f32["model_rss_session_kib"]
    return rows


def run_nbits(args, mlp: Path, cnn: Path, test) -> dict:
    import os

    all_threads = os.cpu_count() or 1
    threads = sorted({1, all_threads})
    trained = {"mlp 784-256-10": load_model(mlp), "cnn 8c5s2-16c5s2-64": load_model(cnn)}
    models = {**trained, "mlp 784-1024-1024-10 (random)": random_mlp((784, 1024, 1024, 10)),
              "mlp 784-4096-4096-10 (random)": random_mlp((784, 4096, 4096, 10))}
    speed = []
    for name, model in models.items():
        speed += bench_nbits_speed(name, model, threads)
        print(f"  measured {name}", flush=True)
    conv = bench_nbits_speed("cnn 8c5s2-16c5s2-64", trained["cnn 8c5s2-16c5s2-64"], [1],
                             forms={"nbits": ("nbits", "conv", 0), "nbits/im2col": ("nbits", "im2col", 0),
                                    "float": ("float", "conv", None)})
    options = bench_session_options(trained)
    parity = [nbits_parity(n.split()[0], m, test) for n, m in trained.items()]
    memory = nbits_memory("mlp4096", models["mlp 784-4096-4096-10 (random)"], 1)
    res = {"onnxruntime": ort.__version__, "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "cpu_count": all_threads, "session": "exact", "speed": speed, "conv_forms": conv,
           "session_options": options, "parity": parity,
           "memory": memory}
    (OUT / "onnx_nbits.json").write_text(json.dumps(res, indent=1))
    print(f"\n--nbits vs INT2 vs float32, onnxruntime {ort.__version__}, `exact` session for all; median seconds per "
          "call, round-robin; x f32 = float32 time / this form's time (> 1 = faster)")
    print(f"{'model':32} {'thr':>3} {'batch':>5} {'nbits us':>10} {'all us':>10} {'int2 us':>10} {'float us':>10} "
          f"{'nbits x f32':>11} {'all x f32':>9} {'int2 x f32':>10}")
    for r in speed:
        if r["form"] != "float":
            continue
        row = {x["form"]: x for x in speed if (x["model"], x["threads"], x["batch"]) == (r["model"], r["threads"],
                                                                                          r["batch"])}
        print(f"{r['model']:32} {r['threads']:3d} {r['batch']:5d} {row['nbits']['seconds'] * 1e6:10.1f} "
              f"{row['nbits/all']['seconds'] * 1e6:10.1f} {row['int2']['seconds'] * 1e6:10.1f} "
              f"{r['seconds'] * 1e6:10.1f} {row['nbits']['x_float']:11.2f} {row['nbits/all']['x_float']:9.2f} "
              f"{row['int2']['x_float']:10.2f}")
    print("\nsession options (batch 1, one thread, the same options for nbits and float32):")
    for r in options:
        if r["form"] == "nbits":
            f32 = next(x for x in options
                       if (x["model"], x["session"], x["form"]) == (r["model"], r["session"], "float"))
            print(f"  {r['model']:24} {r['session']:15} nbits {r['seconds'] * 1e6:7.1f} us  float32 "
                  f"{f32['seconds'] * 1e6:7.1f} us  nbits x f32 {r['x_float']:.2f}")
    print("\nconvolution forms (cnn, 1 thread): " + "; ".join(
        f"batch {r['batch']} {r['form']} {r['seconds'] * 1e6:.0f} us" for r in conv))
    for p in parity:
        print(f"parity {p['model']} on {args.test} ({p['n']}): agreement {100 * p['agreement']:.2f} %, max |dlogit| "
              f"{p['max_abs_diff']:.3f} (p99 {p['p99_abs_diff']:.3f}, median {p['median_abs_diff']:.3f}; largest logit "
              f"{p['max_abs_logit']:.1f}); accuracy {100 * p['accuracy']:.2f} % vs reference "
              f"{100 * p['reference_accuracy']:.2f} %")
    for m in memory:
        t = f", {m['seconds_per_call'] * 1e6:.0f} us/call" if "seconds_per_call" in m else ""
        print(f"memory {m['model']} {m['form']:6} {m['options'] or '':26} batch {m['batch']:3d} file "
              f"{m['bytes'] / 2**20:5.1f} MiB, peak {m['peak_rss_kib'] / 1024:6.1f} MiB; minus import-only "
              f"{m['model_rss_kib'] / 1024:6.1f} MiB = {m['vs_float']:.3f} of f32; minus trivial session "
              f"{m['model_rss_session_kib'] / 1024:6.1f} MiB = {m['vs_float_session']:.3f} of f32{t}")
    print(f"wrote {OUT / 'onnx_nbits.json'}")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlp", type=Path, help="a trained MLP 784-256-10 .tern (default: train one)")
    ap.add_argument("--cnn", type=Path, help="a trained small CNN .tern (default: train one)")
    ap.add_argument("--test", default="idx:/work/shared/datasets/mnist", help="parity dataset")
    ap.add_argument("--calls", type=int, default=1000, help="batch-1 calls per latency median")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1: an edge core)")
    ap.add_argument("--part", default="formats,nbits", help="comma-separated: formats, nbits")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    mlp = args.mlp or train("mlp:256", OUT / "onnx_mlp.tern", args.epochs)
    cnn = args.cnn or train("cnn:8c5s2-16c5s2-64", OUT / "onnx_cnn.tern", args.epochs)
    test = load_dataset(args.test)
    parts = set(args.part.split(","))
    if "nbits" in parts:
        run_nbits(args, mlp, cnn, test)
    if "formats" not in parts:
        return 0
    res = {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "test": args.test, "n_test": len(test), "calls": args.calls,
           "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "threads": args.threads,
           "models": [bench_model("mlp", mlp, test, args.calls, args.threads),
                      bench_model("cnn", cnn, test, args.calls, args.threads)]}
    (OUT / "onnx.json").write_text(json.dumps(res, indent=1))
    print(f"\nonnxruntime {ort.__version__}; parity on {args.test} ({len(test)} samples); latency = median of "
          f"{args.calls} batch-1 calls, {args.threads} thread(s); throughput = median over 40 batches of 256 (both "
          "round-robin over all variants); peak RSS of a fresh process that loads and runs it")
    print(f"{'model':5} {'form':15} {'session':7} {'bytes':>8} {'vs f32':>7} {'agree %':>8} {'max|dlogit|':>11} "
          f"{'lat us':>8} {'x f32':>6} {'samples/s':>10} {'x f32':>6} {'peak MiB':>9}")
    for m in res["models"]:
        f32 = {r["session"]: r for r in m["rows"] if r["form"] == "float"}
        for r in m["rows"]:
            base = f32[r["session"]]
            print(f"{r['model']:5} {r['form']:15} {r['session']:7} {r['bytes']:8d} {r['bytes'] / base['bytes']:7.3f} "
                  f"{100 * r['agreement']:8.2f} {r['max_abs_diff']:11.2e} {r['latency_us']:8.1f} "
                  f"{r['latency_us'] / base['latency_us']:6.2f} {r['throughput_per_s']:10.0f} "
                  f"{base['throughput_per_s'] / r['throughput_per_s']:6.2f} {r['peak_rss_kib'] / 1024:9.1f}")
    for m in res["models"]:
        for r in m["rows"]:
            print(f"{r['model']} {r['form']:15} {r['session']:5} runs: {' '.join(r['optimised_ops'])}")
    print(f"(a process that only imports onnxruntime peaks at {peak_rss('-', 'exact', (1,), 1)[1] / 1024:.1f} MiB)")
    print(f"wrote {OUT / 'onnx.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
