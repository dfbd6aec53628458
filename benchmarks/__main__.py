"""``python -m benchmarks [--size default|full|smoke] [--only a,b] [--no-docs]``.

Runs the scenarios (every one by default, each with its baseline), prints each figure as
it comes, writes ``benchmarks/results/<size>.json`` and, unless ``--no-docs``, replaces
the results table in ``docs/PERFORMANCE.md``. ``--size full`` is the documented run (the
schedule scenario lasts 10 minutes); ``default`` runs it for one minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, machine
from benchmarks.report import markdown, replace_results
from benchmarks.scenarios import DEFAULT, FULL, SCENARIOS, SMOKE, run

SIZES = {"smoke": SMOKE, "default": DEFAULT, "full": FULL}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--json", type=Path, default=None,
                        help="where the JSON goes (default benchmarks/results/SIZE.json)")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not touch docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    info = machine()
    print(f"pihub benchmarks ({size.name}) on {info['cpu']}, {info['cores']} cores, "
          f"load {info['loadavg_at_start']}", file=sys.stderr)
    t0 = time.monotonic()
    results = run(names, size)
    info["loadavg_at_end"] = os.getloadavg()
    info["wall_s"] = round(time.monotonic() - t0, 1)
    document = {"machine": info, "size": dataclasses.asdict(size),
                "results": [{"name": r.name, "rows": [dataclasses.asdict(row) for row in r.rows],
                             "details": r.details} for r in results]}
    out = args.json or ROOT / "benchmarks" / "results" / f"{size.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    table = markdown(info, size, results)
    print(table)
    if not args.no_docs:
        replace_results(ROOT / "docs" / "PERFORMANCE.md", table)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
