"""Run every benchmark module in ``bench/`` (each in its own process, so peak memories do not mix).

A benchmark is any ``bench/*.py`` module not starting with ``_``; it runs its measurements when executed
as ``python -m bench.<name>``. Pass module names to run only those: ``python -m bench emulator_roundtrip``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named in ``argv`` (all when empty).

    :param argv: module names (without ``bench.``).
    :return: 0 when every benchmark succeeded, else 1.
    """
    names = (
        argv
        if argv
        else sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_"))
    )
    failed = []
    for name in names:
        print(f"=== bench.{name}", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
