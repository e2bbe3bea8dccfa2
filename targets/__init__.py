"""ternkit.targets: memory and estimated energy of a model on hardware classes described as data (TOML).

    report = build_report(load_model("m.tern"), [load_target("loihi2"), load_target("mcu")], x=samples)
    write_report(report, "report/")

Imports only `ternkit.core`; simulation activity arrives as a JSON record (`read_activity`).
"""

from .activity import Activity, read_activity
from .energy import estimate, float_baseline
from .make import report_model
from .memory import entropy_bits, fit, model_memory
from .ops import LayerOps, count_ops, totals
from .render import markdown, write_report
from .report import build_report
from .spec import Constant, Target, load_target, parse_target, shipped_targets

__all__ = [
    "Target", "Constant", "load_target", "parse_target", "shipped_targets",
    "Activity", "read_activity",
    "LayerOps", "count_ops", "totals",
    "model_memory", "entropy_bits", "fit",
    "estimate", "float_baseline",
    "build_report", "report_model", "markdown", "write_report",
]
