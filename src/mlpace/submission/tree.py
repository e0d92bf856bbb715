"""Walking a submission tree that came from elsewhere, without trusting it.

A tree is data, never code: nothing in it is imported or executed. Three things are refused,
each with a message a person can act on, and the rest of the tree is still read:
- symbolic links that resolve outside the tree (a link to /etc/passwd named result_1.txt),
  and links to folders (they can loop);
- names that could escape a folder when reused as a path (`..`, separators, NUL, control
  characters) - these matter when `package` turns names from logs into folders;
- absurd sizes (a multi-GB "log" or a tree of a million files).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError

MAX_FILE_BYTES = 200 * 2**20      # larger than any real result log or LoadGen summary
MAX_ENTRIES = 200_000             # files and folders visited in one tree
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` must not become a path component, or None when it is fine."""
    if not name or name in (".", ".."):
        return "is empty or a relative-folder name"
    if _BAD_NAME.search(name):
        return "contains a path separator or a control character"
    if name.startswith(".."):
        return "starts with '..'"
    if len(name) > 200:
        return "is longer than 200 characters"
    return None


def safe_name(name: str, what: str) -> str:
    """`name` if it is safe as one path component; MlpaceError saying why not otherwise."""
    reason = unsafe_name_reason(str(name))
    if reason:
        raise MlpaceError(f"{what} {name!r} {reason}; refusing to use it as a file or folder name")
    return str(name)


@dataclass
class SafeTree:
    """Lists folders of one tree; every refusal lands in `problems` as (path, reason)."""

    root: Path
    max_file_bytes: int = MAX_FILE_BYTES
    problems: list[tuple[str, str]] = field(default_factory=list)
    visited: int = 0

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.root.exists():
            raise MlpaceError(f"{self.root} does not exist")
        if not self.root.is_dir():
            raise MlpaceError(f"{self.root} is not a folder")
        self._real_root = Path(os.path.realpath(self.root))

    def refuse(self, path: Path | str, reason: str) -> None:
        if (str(path), reason) not in self.problems:      # folders are often listed twice
            self.problems.append((str(path), reason))

    def _inside(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == self._real_root or self._real_root in real.parents

    def entries(self, folder: Path) -> list[Path]:
        """Sorted entries of `folder` that are safe to read (refusals recorded)."""
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:
            self.refuse(folder, f"cannot be listed: {err.strerror or err}")
            return []
        kept = []
        for name in names:
            path = Path(folder) / name
            self.visited += 1
            if self.visited > MAX_ENTRIES:
                raise MlpaceError(f"{self.root} holds more than {MAX_ENTRIES} files and folders; "
                                  "this is not a submission tree")
            reason = unsafe_name_reason(name)
            if reason:
                self.refuse(path, f"name {reason}; skipped")
                continue
            if path.is_symlink() and not self._inside(path):
                self.refuse(path, "is a symbolic link to a place outside the tree; refused")
                continue
            if path.is_symlink() and path.is_dir():
                self.refuse(path, "is a symbolic link to a folder; skipped (links can loop)")
                continue
            kept.append(path)
        return kept

    def folders(self, folder: Path) -> list[Path]:
        return [p for p in self.entries(folder) if p.is_dir()]

    def files(self, folder: Path) -> list[Path]:
        """Readable regular files in `folder` within the size limit."""
        kept = []
        for path in self.entries(folder):
            if not path.is_file():
                continue
            try:
                size = path.stat().st_size
            except OSError as err:
                self.refuse(path, f"cannot be read: {err.strerror or err}")
                continue
            if size > self.max_file_bytes:
                self.refuse(path, f"is {size / 2**20:.0f} MB, over the {self.max_file_bytes / 2**20:.0f} MB "
                                  "limit for a result file; skipped")
                continue
            kept.append(path)
        return kept

    def relative(self, path: Path | str) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)


def is_org_folder(path: Path) -> bool:
    """An organisation's folder, as the official tools define it: has results/ and systems/."""
    return (path / "results").is_dir() and (path / "systems").is_dir()


def find_org_folders(tree: SafeTree, depth: int = 3) -> list[Path]:
    """Organisation folders at `tree.root` or up to `depth` levels below it (round/division/org)."""
    if is_org_folder(tree.root):
        return [tree.root]
    found, level = [], [tree.root]
    for _ in range(depth):
        below = []
        for folder in level:
            for sub in tree.folders(folder):
                (found if is_org_folder(sub) else below).append(sub)
        level = below
    return found
