"""`ternkit install-lava [--dry-run] [--quiet]`: install lava-nc 0.10.0 into the running interpreter's environment.

lava-nc 0.10.0 declares `Requires-Python <3.11` and pins numpy<2 (and more), so `pip install lava-nc` refuses on
3.11 and cannot be an ordinary extra. This runs the two pip commands that work, with `sys.executable`:

1. `pip install <the pins of ternkit's lava extra>` (read from the installed ternkit's metadata, so the pins have
   one source: pyproject.toml), i.e. what `pip install 'ternkit[lava]'` adds;
2. `pip install --no-deps --ignore-requires-python lava-nc==0.10.0`.

Step 1 moves numpy below 2 if the environment has numpy 2: the command says so before it runs.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from importlib import metadata

from ternkit.commands import SUMMARIES
from ternkit.core.errors import TernkitError

LAVA_REQUIREMENT = "lava-nc==0.10.0"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install-lava", help=SUMMARIES["install-lava"],
                       description="Install lava-nc 0.10.0 and the pins it needs into this interpreter's "
                       f"environment ({sys.executable}): first the pins of the 'lava' extra, then lava-nc "
                       "with --no-deps --ignore-requires-python (it declares Python <3.11).")
    p.add_argument("--dry-run", action="store_true", help="print the pip commands without running them")
    p.add_argument("--quiet", action="store_true", help="pass --quiet to pip")
    p.set_defaults(run=run)


def lava_pins() -> list[str]:
    """The requirements of ternkit's `lava` extra, as the installed metadata declares them."""
    try:
        requires = metadata.requires("ternkit") or []
    except metadata.PackageNotFoundError:
        raise TernkitError("ternkit's package metadata is not installed; install ternkit with pip first") from None
    pins = []
    for req in requires:
        spec, _, marker = req.partition(";")
        if marker.replace("'", '"').replace(" ", "") == 'extra=="lava"':
            pins.append(spec.strip())
    if not pins:
        raise TernkitError("the installed ternkit metadata declares no 'lava' extra; reinstall ternkit")
    return pins


def pip_commands(quiet: bool = False) -> list[list[str]]:
    pip = [sys.executable, "-m", "pip", "install"] + (["--quiet"] if quiet else [])
    return [pip + lava_pins(), pip + ["--no-deps", "--ignore-requires-python", LAVA_REQUIREMENT]]


def run(args: argparse.Namespace) -> int:
    commands = pip_commands(args.quiet)
    if args.dry_run:
        for cmd in commands:
            print(shlex.join(cmd))
        return 0
    try:
        import numpy

        if int(numpy.__version__.split(".")[0]) >= 2:
            print(f"note: lava-nc needs numpy<2; numpy {numpy.__version__} in this environment will be replaced",
                  file=sys.stderr)
    except ImportError:
        pass
    for cmd in commands:
        print(f"+ {shlex.join(cmd)}", flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            print(f"ternkit install-lava: error: pip exited {rc}", file=sys.stderr)
            return 1
    return 0
