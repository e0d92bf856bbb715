"""A round-size training tree for the benches: the published v1.0 fixtures repeated under
renamed organisations (hard links where the file system allows, so it costs little disk)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "data" / "mlperf" / "training_v1.0"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def make_round(dest: Path, logs: int, rename_submitters: bool = False) -> int:
    """A training_v1.0-style round of at least `logs` result files; returns how many.
    `rename_submitters`: each copy's system descriptions name its own organisation too."""
    orgs = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
    per_copy = sum(1 for _ in FIXTURES.glob("*/results/*/*/result_*.txt"))
    copies = max(1, -(-logs // per_copy))
    for copy in range(copies):
        for org in orgs:
            name = org.name if copy == 0 else f"{org.name}_c{copy}"
            shutil.copytree(org, dest / name, copy_function=_link_or_copy)
            if not rename_submitters:
                continue
            for desc in (dest / name / "systems").glob("*.json"):
                data = json.loads(desc.read_text())
                data["submitter"] = name
                desc.unlink()                      # a hard link: never write through it
                desc.write_text(json.dumps(data, indent=2))
    return copies * per_copy
