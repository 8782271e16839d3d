"""Runs the benchmarks: every module ``bench/bench_<name>.py`` that defines ``main(argv)``.

python -m bench                      # all of them
python -m bench --only exporter      # bench/bench_exporter.py only
python -m bench --only exporter -- --accounts 1000   # arguments after -- go to main()
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

PREFIX = "bench_"


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        info.name[len(PREFIX) :]
        for info in pkgutil.iter_modules([str(here)])
        if info.name.startswith(PREFIX)
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, passthrough = argv[:split], argv[split + 1 :]
    names = available()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this benchmark (repeatable); one of: {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    status = 0
    for name in args.only or names:
        module = importlib.import_module(f"bench.{PREFIX}{name}")
        print(f"== bench {name} ==", flush=True)
        status = max(status, int(module.main(passthrough) or 0))
    return status


if __name__ == "__main__":
    sys.exit(main())
