"""One module per `ternkit` subcommand, each with `add_parser(subparsers)` and `run(args) -> int`.

SUMMARIES is the one-line help of each: `ternkit --help` lists them without importing the commands (some
import torch, which takes seconds), and each command's parser uses the same line.
"""

SUMMARIES = {
    "train": "train a ternary (or float) model",
    "eval": "accuracy of a .tern or .onnx model on a dataset",
    "export": "export a .tern model to ONNX, a Lava process graph or C for microcontrollers",
    "simulate": "run a model in onnxruntime, Lava's Loihi 2 simulator, or as C (host, emulated Cortex-M4); "
                "accuracy, agreement, activity",
    "report": "memory and energy of a model on hardware targets (JSON, Markdown, PNG)",
    "pipeline": "train, export, simulate and report in one run",
    "install-lava": "install lava-nc 0.10.0 and its pins into this environment (pip, the steps it needs)",
}
