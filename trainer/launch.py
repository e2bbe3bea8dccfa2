"""Start N copies of a command on this machine with torchrun's own launcher (what `--nproc N` does).

This runs `torch.distributed.run` in-process, exactly as `torchrun --standalone --nproc-per-node N -m MODULE
ARGS` would, but catches its failure report: the processes print their own one-line errors, and the
launcher returns an exit code instead of torchrun's multi-page traceback.
"""

from __future__ import annotations

import logging
import os

from ternkit.core.errors import OptionError

__all__ = ["launch_local", "LaunchFailed"]


class LaunchFailed(Exception):
    """Some processes failed; `exit_code` is what the launcher should return, `message` one line about it."""

    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code, self.message = exit_code, message


def launch_local(nproc: int, module_args: list[str]) -> None:
    """Run `python -m <module_args>` as `nproc` torchrun processes; returns when all succeeded. Options reach
    the processes on their command line (`module_args`), never through the environment."""
    if not 1 <= nproc <= 1024:
        raise OptionError(f"--nproc must be in 1..1024, got {nproc}")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun would set 1 thread per process; share the cores instead, unless the user chose
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m", *module_args])
    # torchrun's own log lines repeat what the processes said (their errors, "death signal")
    names = ["torch.distributed.elastic", *(n for n in logging.root.manager.loggerDict
                                            if n.startswith("torch.distributed.elastic."))]
    quiet = [logging.getLogger(n) for n in names]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as e:
        codes = {int(f.local_rank): int(f.exitcode) for f in e.failures.values()}
        exited = {r: c for r, c in codes.items() if c > 0}  # the launcher SIGTERMs the rest after a failure
        if exited:
            code = 2 if set(exited.values()) == {2} else max(exited.values())
            raise LaunchFailed(code, f"process(es) {sorted(exited)} failed with exit code(s) "
                               f"{sorted(set(exited.values()))}; the others were stopped") from None
        rank, code = sorted(codes.items())[0]
        raise LaunchFailed(1, f"process {rank} was killed by signal {-code}; the others were stopped") from None
    except SignalException as e:  # Ctrl-C / SIGTERM reached the launcher; the processes got it too
        raise LaunchFailed(130, f"interrupted ({e.sigval.name})") from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
