"""Before/after timing of two trees of this repository: each case in a fresh subprocess of each tree
in turn (alternating, so a busy spell of a shared machine hits both), best of ``repeats``.

Used by ``regression.py`` (solves on numpy) and ``sweeps.py`` (torch sweeps): ``checkouts`` adds
git worktrees of the revisions asked for, ``compare`` prints one row per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def run(tree: Path, child: str, case: Any) -> float:
    """Seconds that ``child`` (Python source reading ``json.loads(sys.argv[1])``) prints for ``case``,
    with ``tree``'s mfg_rl first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}  # this tree's mfg_rl before any installed one
    out = subprocess.run([sys.executable, "-c", child, json.dumps(case)], cwd=tree, capture_output=True,
                         text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


@contextmanager
def checkouts(before: str, after: str = "") -> Iterator[tuple[Path, Path]]:
    """``(before tree, after tree)``: worktrees of the revisions (``after=""``: this tree), removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": before, "after": after}
        added = []
        try:
            for name, revision in trees.items():
                if revision:
                    subprocess.run(["git", "worktree", "add", "--detach", str(Path(tmp) / name), revision],
                                   cwd=HERE, check=True, capture_output=True)
                    added.append(Path(tmp) / name)
            yield Path(tmp) / "before", Path(tmp) / "after" if after else HERE
        finally:
            for path in added:
                subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=HERE, check=False)


def compare(trees: tuple[Path, Path], child: str, cases: Mapping[str, Any], repeats: int, width: int = 36,
            digits: int = 3, flag_above: float | None = None) -> None:
    """One row per case: best seconds before, after, and their ratio (flagged above ``flag_above``)."""
    print(f"{'case':{width}s} {'before s':>10s} {'after s':>10s} {'after/before':>13s}")
    for name, case in cases.items():
        before, after = [], []
        for _ in range(repeats):
            before.append(run(trees[0], child, case))
            after.append(run(trees[1], child, case))
        ratio = min(after) / min(before)
        flag = f"  > {flag_above - 1:.0%}" if flag_above is not None and ratio > flag_above else ""
        print(f"{name:{width}s} {min(before):10.{digits}f} {min(after):10.{digits}f} {ratio:13.2f}{flag}",
              flush=True)
