"""`ternkit simulate MODEL [--backend NAME] --dataset SPEC [--limit N] [--json] [-o activity.json] [backend
options]`: the backends and their flags come from the registry (`ternkit.export.backends()`).

Accuracy, agreement with the numpy reference (`TernaryModel.forward`), throughput and activity per inference,
written as a "ternkit-activity" record that `ternkit report` reads (schema: docs/lava.md).
"""

from __future__ import annotations

import argparse
import json

from ternkit.commands import SUMMARIES
from ternkit.commands.backend_options import add_options, given
from ternkit.core import OptionError


def _simulators() -> dict:
    from ternkit.export import backends

    return {name: b for name, b in backends().items() if b.simulate is not None}


def add_parser(sub: argparse._SubParsersAction) -> None:
    sims = _simulators()
    p = sub.add_parser("simulate", help=SUMMARIES["simulate"],
                       description="Simulate a .tern model on a backend (Lava: neuromorphic, fixed point by "
                       "default; onnxruntime; C built for the host or a Cortex-M4 in qemu; and any other registered "
                       "one); report accuracy, agreement with the numpy reference, samples/s and activity (messages, "
                       "synaptic ops, neuron updates) per inference.")
    p.add_argument("model", help="a .tern artifact")
    p.add_argument("--backend", choices=tuple(sims), default="lava",
                   help="where to run it (default lava); each backend's options are marked [--backend NAME]")
    p.add_argument("--dataset", default="mnist-sample", help="dataset spec (default: mnist-sample)")
    p.add_argument("--limit", type=int, default=None, help="simulate N samples spread evenly over the dataset")
    p.add_argument("--json", action="store_true", help="print the activity record as JSON")
    p.add_argument("-o", "--out", metavar="ACTIVITY.json", help="write the activity record here")
    takers: dict[str, list[str]] = {}
    for n, b in sims.items():
        for o in b.simulate_options:
            takers.setdefault(o.flag, []).append(n)
    options = [o for b in sims.values() for o in b.simulate_options]
    add_options(p, options, {flag: f" [--backend {'|'.join(names)}]" for flag, names in takers.items()})
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ternkit.export import simulate, simulation_text

    sims = _simulators()
    chosen = sims[args.backend]
    for b in sims.values():  # an option the chosen backend does not take: one line naming who takes it
        for o in b.simulate_options:
            if hasattr(args, o.dest) and o.dest not in {c.dest for c in chosen.simulate_options}:
                takers = [n for n, c in sims.items() if o.flag in {x.flag for x in c.simulate_options}]
                raise OptionError(f"{o.flag} applies to --backend {' and '.join(takers)} only")
    record = simulate(args.model, args.dataset, args.backend, limit=args.limit, out=args.out,
                      **given(args, chosen.simulate_options))
    print(json.dumps(record) if args.json else simulation_text(record))
    return 0
