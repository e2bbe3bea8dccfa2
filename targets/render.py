"""Write a report: report.json (machine-readable), report.md (tables a person reads), memory.png, energy.png.

The directory is written whole through `ternkit.core.atomic.atomic_dir`, so an interrupted run or a full disk
never leaves a half-written report, nor one that mixes new files with an older report's.
Charts use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from ternkit.core.atomic import atomic_dir
from ternkit.core.text import md, md_code, plain

from .measured import measured_lines

__all__ = ["write_report", "markdown", "FILES"]

FILES = ("report.json", "report.md", "memory.png", "energy.png")


def _n(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:g}"


def _energy(pj: float | None) -> str:
    if pj is None:
        return "–"
    for unit, scale in (("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:,.2f} {unit}"
    return f"{pj:,.1f} pJ"


def _bytes(b: float | None) -> str:
    if b is None:
        return "–"
    if b >= 1024 * 1024:
        return f"{b / 1024 / 1024:,.2f} MiB"
    if b >= 1024:
        return f"{b / 1024:,.1f} KiB"
    return f"{b:,.0f} B"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def markdown(r: dict[str, Any]) -> str:
    m, ops, nb = r["memory"], r["operations"], r["neurobench"]
    counts = (f"operation counts measured on {md_code(r['data']['dataset'])} ({r['data']['samples']} samples, numpy "
              "reference)" if r["data"] else "structural operation counts (no data: every input counted as non-zero)")
    if r["activity"]:
        a = r["activity"]
        counts += (f"; neuromorphic activity from {md_code(a['path'])} ({md(a['backend'])}, {md(a['neuron'] or '-')}, "
                   f"{a['samples']} samples)")
    arch = " → ".join(md(a) for a in r["model"]["architecture"])
    out = [f"# Memory and energy report: {md_code(r['model']['path'] or 'model')}", "",
           f"{r['model']['kind']} model, {arch}, input {tuple(r['model']['input_shape'])}; {counts}.", "",
           *[f"> **Warning**: {md(w, 1000)}." for w in r.get("warnings", [])],
           *([""] if r.get("warnings") else []),
           "All energies are **estimates** from published per-operation figures; each target's assumptions and "
           "constants (with sources) are listed below. Units: energy per inference; memory in bytes.", "",
           "## Summary", "",
           "| target | fits | memory use | energy / inference | float32 baseline (cpu-fp32) | ratio | × less |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for t in r["targets"]:
        f, e = t["fit"], t["energy"]
        if "cores_needed" in f:
            use = f"{f['cores_needed']} of {f['cores']} cores"
        else:
            use = (f"{_pct(f['weight_memory_used'])} of weight memory, "
                   f"{_pct(f['activation_memory_used'])} of activation memory")
        out.append(f"| {md(t['name'])} | {'yes' if f['fits'] else '**no**'} | {use} | {_energy(e['per_inference_pj'])} "
                   f"| {_energy(e['float_baseline_pj'])} | {e['ratio_vs_float']:.3g} | "
                   f"{_n(e['savings_vs_float'], 1)} |")
    out += ["", "## Memory", "",
            "| node | kind | weights | zero | stored | bits/weight | entropy bound | scales + biases | float32 | "
            "output buffer |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for lay in m["layers"]:
        out.append(f"| {md(lay['node'])} | {md(lay['kind'])} | {lay['weights']:,} | {_pct(lay['zero_fraction'])} | "
                   f"{_bytes(lay['weight_bytes'])} | {lay['weight_bits_per_weight'] or '–'} | "
                   f"{_bytes(lay['entropy_bytes'])} | {_bytes(lay['scale_bytes'] + lay['bias_bytes'])} | "
                   f"{_bytes(lay['float32_bytes'])} | {_n(lay['activation_buffer_elements'])} |")
    out.append(f"| **total** | | {m['weights']:,} | {_pct(nb['connection_sparsity'])} "
               f"| {_bytes(m['weight_bytes'])} | {m['bits_per_weight']:.2f} | {_bytes(m['entropy_weight_bytes'])} | "
               f"{_bytes(m['scale_and_bias_bytes'])} | {_bytes(m['float32_parameter_bytes'])} | "
               f"{_n(m['activation_elements_written'])} |")
    ebits = m["entropy_bits_per_learned_parameter"]
    out += ["", f"- Parameters as stored: **{_bytes(m['parameter_bytes'])}** ({m['parameter_bytes']:,} B) vs float32 "
            f"{_bytes(m['float32_parameter_bytes'])}: {m['compression_vs_float32']:.2f}× smaller "
            f"({m['compression_vs_float64']:.2f}× smaller than float64).",
            f"- Bits per learned weight (all stored bits / weights): **{m['bits_per_learned_parameter']:.3f}**"
            + (f"; entropy bound {ebits:.3f} (weights {m['entropy_bits_per_weight']:.3f} bits each; "
               "log2 3 = 1.585 for uniform trits)." if ebits is not None else "."),
            f"- Peak activation memory (buffers live at once, nodes run in order, each buffer freed after its last "
            f"reader): {m['peak_activation_elements']:,} values = {_bytes(m['peak_activation_bytes_float32'])} "
            "in float32.",
            "", "## Operations per inference", "",
            "| node | kind | outputs | dense MACs | non-zero-weight MACs | effective MACs | input sparsity | "
            "messages in | other arithmetic |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for o in ops["layers"]:
        meas = o["measured"]
        other = ", ".join(f"{k} {v:,}" for k, v in o["arithmetic"].items() if v) or "–"
        out.append(f"| {md(o['node'])} | {md(o['kind'])} | {o['neurons']:,} | {o['dense_macs']:,} | "
                   f"{o['nonzero_weight_macs']:,} | {_n(o['effective_macs'] if meas else None)} | "
                   f"{_pct(o['input_activation_sparsity'] if meas else None)} | "
                   f"{_n(o['messages'] if meas else None)} | {other} |")
    tot = ops["totals"]
    other = ", ".join(f"{k} {v:,}" for k, v in tot["arithmetic"].items() if v) or "–"
    out.append(f"| **total** (nodes with connections) | | {tot['neurons']:,} | {tot['dense_macs']:,} | "
               f"{tot['nonzero_weight_macs']:,} | {_n(tot['effective_macs'] if tot['measured'] else None)} | | "
               f"{_n(tot['messages'] if tot['measured'] else None)} | {other} |")
    sops = nb["synaptic_operations"]
    out += ["", "## NeuroBench metrics", "",
            "| metric | value |", "| --- | ---: |",
            f"| footprint (NeuroBench: 4 B per parameter) | {nb['footprint_bytes']:,} B |",
            f"| footprint as stored (ours) | {nb['stored_bytes']:,} B |",
            f"| connection sparsity | {nb['connection_sparsity']:.4f} |",
            f"| activation sparsity | {_n(nb['activation_sparsity'], 4)} |",
            f"| synaptic operations: dense | {sops['dense']:,} |",
            f"| synaptic operations: effective MACs | {_n(sops['effective_macs'])} |",
            f"| synaptic operations: effective ACs | {_n(sops['effective_acs'])} |", ""]
    out += [f"- {note}" for note in nb["notes"]]
    b = r["float_baseline"]
    out += ["", f"## Float32 baseline ({md(b['target'])}, same architecture): {_energy(b['per_inference_pj'])}", "",
            "| item | count | pJ each | energy |", "| --- | ---: | ---: | ---: |"]
    out += [f"| {md(i['item'])} | {_n(i['count'])} | {i['pj_each']:g} | {_energy(i['pj'])} |" for i in b["items"]]
    for t in r["targets"]:
        e, f, spec = t["energy"], t["fit"], t["spec"]
        out += ["", f"## Target {md_code(t['name'])}: {md(t['description'], 1000)}", "",
                f"Energy per inference **{_energy(e['per_inference_pj'])}** "
                f"({e['ratio_vs_float']:.3g} of the float32 baseline); counts from {e['counts_from']}."
                + (f" The same architecture with dense {e['dense_alternative']['weight_bits']:g}-bit weights on this "
                   f"target: {_energy(e['dense_alternative']['per_inference_pj'])}."
                   if e.get("dense_alternative") else ""), "",
                "| item | count | pJ each | energy |", "| --- | ---: | ---: | ---: |"]
        out += [f"| {md(i['item'])} | {_n(i['count'])} | {i['pj_each']:g} | {_energy(i['pj'])} |" for i in e["items"]]
        if "cores_needed" in f:
            out += ["", f"Fit: {f['cores_needed']} of {f['cores']} cores ({'fits' if f['fits'] else 'does NOT fit'}); "
                    f"{f['synapses']:,} synapses at {f['bits_per_synapse']} bits. " + f.get("note", ""), "",
                    "| layer | neurons | synapses | cores (neurons) | cores (synapses) | cores |",
                    "| ---: | ---: | ---: | ---: | ---: | ---: |"]
            out += [f"| {x['index']} | {x['neurons']:,} | {x['synapses']:,} | {x['cores_by_neurons']} | "
                    f"{x['cores_by_synapses']} | {x['cores']} |" for x in f["layers"]]
        else:
            out += ["", f"Fit: parameters {_bytes(f['parameter_bytes'])} of {_bytes(f['weight_memory_bytes'])} "
                    f"weight memory ({_pct(f['weight_memory_used'])}); peak activations "
                    f"{_bytes(f['peak_activation_bytes'])} of {_bytes(f['activation_memory_bytes'])} "
                    f"({_pct(f['activation_memory_used'])}): {'fits' if f['fits'] else 'does NOT fit'}."]
        out += measured_lines(t)
        out += ["", "Assumptions:", ""] + [f"- {md(a, 1000)}" for a in t["assumptions"]]
        out += ["", "| constant | value | unit | source |", "| --- | ---: | --- | --- |"]
        out += [f"| {md(k)} | {_num(c['value'])} | {md(c['unit'])} | {md(c['source'], 1000)} |"
                for k, c in spec["constants"].items()]
        out += ["", "Energy roles (sums of constants): " + "; ".join(
            f"{md(k)} = {' + '.join(md(x) for x in v['sum_of'])} = {v['value']:g} pJ"
            for k, v in spec["energy_pj"].items()) + "."]
    return "\n".join(out) + "\n"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _charts(r: dict[str, Any]) -> tuple[bytes, bytes]:
    """memory.png and energy.png. Labels hold model and target text, so they are plain text: mathtext and
    TeX are off for every Text made here (`$\\nosuchcmd$` in a node or target name was a ParseFatalException)."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.usetex": False, "text.parse_math": False}):
        return _draw(r)


def _draw(r: dict[str, Any]) -> tuple[bytes, bytes]:
    import matplotlib.pyplot as plt

    layers = [lay for lay in r["memory"]["layers"] if lay["stored_bytes"]]  # nodes with parameters
    names = [plain(f"{lay['node']}:{lay['kind']}") for lay in layers]
    xs = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(layers) + 2), 3.8))
    w = 0.27
    ax.bar([i - w for i in xs], [lay["float32_bytes"] for lay in layers], w, label="float32", color="#999999")
    ax.bar(list(xs), [lay["weight_bytes"] + lay["scale_bytes"] + lay["bias_bytes"] for lay in layers], w,
           label="as stored", color="#1f77b4")
    if any(lay["entropy_bytes"] is not None for lay in layers):
        ax.bar([i + w for i in xs], [(lay["entropy_bytes"] or 0) + lay["scale_bytes"] + lay["bias_bytes"]
                                     for lay in layers],
               w, label="entropy bound", color="#2ca02c")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("bytes (log scale)")
    ax.set_title("Parameter memory per layer")
    ax.legend(fontsize=8)
    memory_png = _png(fig)

    targets = r["targets"]
    labels = [plain(t["name"]) for t in targets] + [f"float32\n({plain(r['float_baseline']['target'])})"]
    values = [t["energy"]["per_inference_pj"] / 1e3 for t in targets] + [r["float_baseline"]["per_inference_pj"] / 1e3]
    colors = ["#1f77b4"] * len(targets) + ["#999999"]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) + 2), 3.8))
    bars = ax.bar(labels, values, color=colors)
    for bar, t in zip(bars, targets, strict=False):
        ax.annotate(f"{t['energy']['ratio_vs_float']:.2g}×", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("nJ per inference (log scale)")
    ax.set_title(f"Energy per inference: {plain(r['model']['kind'])} model on each target vs float32 baseline\n"
                 "(labels: ratio to float32)",
                 fontsize=10)
    energy_png = _png(fig)
    return memory_png, energy_png


def write_report(r: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write the four files into `out_dir` as a whole: they are made in a temporary directory beside it, which
    then replaces `out_dir` (an older report there is replaced whole, never mixed with the new files; a
    directory holding anything else is refused). Returns their paths."""
    out = Path(out_dir)
    memory_png, energy_png = _charts(r)
    text = markdown(r)
    payload = json.dumps(r, indent=2, allow_nan=False)
    with atomic_dir(out, replaceable=FILES) as tmp:
        (tmp / "report.json").write_text(payload, encoding="utf-8")
        (tmp / "report.md").write_text(text, encoding="utf-8")
        (tmp / "memory.png").write_bytes(memory_png)
        (tmp / "energy.png").write_bytes(energy_png)
    return [out / f for f in FILES]
