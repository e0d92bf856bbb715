"""Where data sets live, and the one way mini data sets are generated and cached.

Mini data is generated deterministically (a fixed seed per data-set version) the first time a
benchmark needs it, into a temporary folder that is renamed into place only when complete: an
interrupted generation leaves nothing half-written behind, and two processes generating the
same data set at once both end with one complete copy. Bump a generator's `version` when its
output changes, so stale caches are not reused.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from mlpace.errors import MlpaceError

DONE_MARKER = ".mlpace-complete"


def data_root(override: str | os.PathLike | None = None) -> Path:
    """The data folder: `--data-dir`, else $MLPACE_DATA, else the user cache folder."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("MLPACE_DATA"):
        return Path(os.environ["MLPACE_DATA"]).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("mlpace")) / "data"


def cached_dataset(root: Path, name: str, version: int,
                   generate: Callable[[Path], None]) -> Path:
    """Path to the complete generated data set `name` (v`version`), generating it if needed."""
    target = Path(root) / f"{name}-v{version}"
    if (target / DONE_MARKER).exists():
        return target
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MlpaceError(f"cannot create data folder {root}: {err.strerror or err}") from None
    tmp = Path(root) / f".{name}-v{version}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        generate(tmp)
        (tmp / DONE_MARKER).write_text(f"{name} v{version}\n")
        if target.exists() and not (target / DONE_MARKER).exists():
            shutil.rmtree(target)  # an incomplete copy from an older, interrupted mlpace
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / DONE_MARKER).exists():
                raise
            # another process finished first: its copy is identical; keep it
    except OSError as err:
        raise MlpaceError(f"cannot write data set {name} to {root}: {err.strerror or err}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def require_dir(path: Path, what: str) -> Path:
    """A clear error when a user-supplied data folder is missing."""
    if not Path(path).is_dir():
        raise MlpaceError(f"{what} not found at {path} (see --data-dir)")
    return Path(path)
