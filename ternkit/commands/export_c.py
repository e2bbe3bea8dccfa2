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


def run(args: argparse.Namespace) -> int:
    from ternkit.export.c.emit import check_out_dir, export_c
    from ternkit.export.c.program import check_supported
    from ternkit.export.calibration import calibration_data

    model = load_model(args.model)
    check_supported(model)  # an unsupported operation is refused before calibration
    check_out_dir(args.out)
    x, _, spec = calibration_data(model, args.calibrate, where=str(args.model))  # what export lava uses
    prog = export_c(model, args.out, x, source=spec)
    print(f"wrote {args.out}/model.h and model.c ({len(prog.steps)} kernel calls, activation arena "
          f"{prog.arena_bytes} bytes, TK_INPUTS {prog.inputs}, TK_CLASSES {prog.classes}; calibrated on "
          f"{prog.calibration_samples} samples of {spec})")
    return 0
