"""`ternkit export c MODEL -o DIR [--calibrate DATASET]`: model.h + model.c, dependency-free integer C99 for a
microcontroller (docs/mcu.md)."""

from __future__ import annotations

import argparse

from ternkit.core import load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("c", help="export dependency-free C99 (int8 activations, add/subtract kernels) for a "
                       "microcontroller",
                       description="Write DIR/model.h and DIR/model.c: integer-only inference with 2-bit packed "
                       "const weights and one static activation arena; requantisation is calibrated on data. "
                       "API: tk_quantize(raw, q), tk_predict(q, scores).")
    p.add_argument("model", help="a .tern artifact (ternary)")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="directory to write (new, empty, or holding an earlier model.h/model.c)")
    p.add_argument("--calibrate", metavar="DATASET", default=None,
                   help="data that sets the fixed-point scales (default: the training part of the model's dataset, "
                   "if it is a bundled one: iris, digits, mnist-sample)")
    p.set_defaults(run=run)


def calibration(model, spec: str | None, where: str):
    """(calibration samples, the spec they came from): the same data the Lava export calibrates on."""
    try:
        from ternkit.export.calibration import calibration_data
    except ImportError:  # until it moves out of the lava command
        from ternkit.commands.export_lava import calibration_data
    x, _, used = calibration_data(model, spec, where=where)
    return x, used


def run(args: argparse.Namespace) -> int:
    from ternkit.export.c_emit import check_out_dir, export_c
    from ternkit.export.c_program import check_supported

    model = load_model(args.model)
    check_supported(model)  # an unsupported operation is refused before calibration
    check_out_dir(args.out)
    x, spec = calibration(model, args.calibrate, str(args.model))
    prog = export_c(model, args.out, x, source=spec)
    print(f"wrote {args.out}/model.h and model.c ({len(prog.steps)} kernel calls, activation arena "
          f"{prog.arena_bytes} bytes, TK_INPUTS {prog.inputs}, TK_CLASSES {prog.classes}; calibrated on "
          f"{prog.calibration_samples} samples of {spec})")
    return 0


def simulate_c_args(model, data, args: argparse.Namespace) -> dict:
    """`ternkit simulate --backend c|cortex-m4`: calibrate as the export does, build, run, check."""
    from ternkit.export.c_sim import simulate_c

    if args.build:
        from ternkit.export.c_emit import check_out_dir
        from ternkit.export.c_sim import BUILD_FILES

        check_out_dir(args.build, BUILD_FILES)  # before calibration
    x, spec = calibration(model, args.calibrate, str(args.model))
    return simulate_c(model, data.x, data.y, args.backend, x, source=spec, model_path=str(args.model),
                      dataset=args.dataset, build_dir=args.build)


def c_summary(r: dict) -> str:
    """The lines `simulate --backend c|cortex-m4` adds to the activity table."""
    same = ("bit-identical to the numpy emulation on every sample" if r["emulation_identical"] else
            f"DIFFERS from the numpy emulation on {r['emulation_mismatches']} samples")
    lines = [f"C scores {same}; activation arena {r['arena_bytes']} bytes"]
    m = r.get("mcu")
    if m:
        lines.append(f"Cortex-M4 (qemu mps2-an386): {m['instructions_per_inference']:,.0f} instructions per inference "
                     f"(measured, {m['instructions_min']:,}..{m['instructions_max']:,}); model flash "
                     f"{m['flash_bytes']:,} B (text {m['sections']['text']:,} + rodata {m['sections']['rodata']:,} + "
                     f"data {m['sections']['data']:,}); RAM {m['ram_bytes']:,} B (data + bss {m['static_ram_bytes']:,} "
                     f"+ stack high-water {m['stack_bytes']:,}), measured with arm-none-eabi-size and a painted stack")
    return "\n".join(lines)
