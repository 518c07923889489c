"""`dlakit prepare` on every zoo network at full size (published form → prepared), verified; prints a table.

Run: python benchmarks/bench_prepare.py [NAME ...]   (about 2 minutes for all six on 2 cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from dlakit.prepare import prepare_model
from dlakit.zoo import NETWORKS


def main(names: list[str]) -> None:
    table = Table(title="dlakit prepare, published → prepared, full size, random weights (seed 0)")
    for column in ("network", "recognised as", "nodes", "max abs err", "max rel err", "DLA MACs before → after",
                   "fully DLA", "time s"):
        table.add_column(column)
    for name in names or list(NETWORKS):
        start = time.perf_counter()
        result = prepare_model(name).as_dict()
        elapsed = time.perf_counter() - start
        outputs = result["verification"]["outputs"]
        before, after = result["check"]["before"], result["check"]["after"]
        table.add_row(name, result["recognition"]["network"],
                      f"{result['nodes']['before']} → {result['nodes']['after']}",
                      f"{max(o['max_abs'] for o in outputs):.1e}", f"{max(o['max_rel'] for o in outputs):.1e}",
                      f"{before['dla_mac_fraction']:.1%} → {after['dla_mac_fraction']:.1%}",
                      str(after["fully_on_dla"]), f"{elapsed:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
