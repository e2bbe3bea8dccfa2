"""`ternkit export onnx MODEL -o OUT [--cast|--int8|--float|--nbits] [--bundle DIR] [--no-check]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ternkit.core import OptionError, load_model
from ternkit.core.atomic import check_writable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("onnx", help="export to ONNX (2-bit INT2 weights by default)",
                       description="Export a .tern model to ONNX for onnxruntime. Default: INT2 weights "
                       "(2 bits each, IR 11 / opset 25) dequantised in the graph; the installed onnxruntime "
                       "must run the file and agree with the reference before it is written. Which to pick: "
                       "the default for any ONNX runtime (exact logits; float speed and float RAM once loaded in "
                       "onnxruntime); --nbits for onnxruntime on CPU (faster than float, weights stay 2-bit in "
                       "RAM, needs its contrib operators); --int8 for runtimes without INT2.")
    p.add_argument("model", help="a .tern artifact")
    p.add_argument("-o", "--out", help="the .onnx file to write")
    p.add_argument("--bundle", metavar="DIR", help="write an edge bundle: DIR/model.onnx, labels.json, predict.py")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--cast", dest="fmt", action="store_const", const="int2-cast",
                     help="INT2 weights dequantised by Cast*scale instead of DequantizeLinear: as fast as float "
                     "even with onnxruntime's default session options")
    fmt.add_argument("--int8", dest="fmt", action="store_const", const="int8",
                     help="int8 weights, opset 13 QDQ (runs on older onnxruntime versions)")
    fmt.add_argument("--float", dest="fmt", action="store_const", const="float",
                     help="plain float32 weights (the size/speed baseline)")
    fmt.add_argument("--nbits", dest="fmt", action="store_const", const="nbits",
                     help="dense layers as onnxruntime's contrib MatMulNBits (bits=2): faster than float and 2-bit "
                     "in RAM, logits within ~1e-2 (int8 activations); onnxruntime only. Pick it for onnxruntime "
                     "on CPU; keep the default INT2 for any other ONNX runtime or bit-exact logits")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the onnxruntime load-and-compare check (onnx.checker still runs)")
    p.set_defaults(run=run, fmt="int2")


def run(args: argparse.Namespace) -> int:
    from ternkit.export.onnx.bundle import write_bundle
    from ternkit.export.onnx.export import export_onnx

    if not args.out and not args.bundle:
        raise OptionError("give -o OUT.onnx, --bundle DIR, or both")
    if args.out and not args.out.endswith(".onnx"):
        raise OptionError(f"-o {args.out}: the output file name must end in .onnx")
    model = load_model(args.model)
    for path in ([args.out] if args.out else []) + ([Path(args.bundle) / "model.onnx"] if args.bundle else []):
        check_writable(path)
    if model.kind == "float" and args.fmt != "float":
        print(f"note: {args.model} is a float model; exporting float32 weights")
    results = []
    if args.out:
        results.append(export_onnx(model, args.out, args.fmt, check=args.check))
    if args.bundle:
        results.append(write_bundle(model, args.bundle, args.fmt, check=args.check))
    for r in results:
        checked = (f"checked with onnxruntime {r.runtime}, max |logit diff| {r.max_abs_diff:.2g}"
                   if r.runtime else "not checked with onnxruntime")
        print(f"wrote {r.path} ({r.format} weights, {r.size:,} bytes; {checked})")
    return 0
