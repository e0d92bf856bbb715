"""Where the organisations of a submission tree are, found with the safe walker of `mlpace.io`.

The walker (`mlpace.io.SafeTree`) decides what of a tree may be read at all; this module only
knows the official layout: an organisation's folder holds `results/` and `systems/`.
"""

from __future__ import annotations

from pathlib import Path

from mlpace.io import SafeTree


def is_org_folder(tree: SafeTree, path: Path) -> bool:
    """An organisation's folder, as the official tools define it: has results/ and systems/
    (real folders of the tree: a link named `results` is refused, never followed)."""
    return tree.is_folder(path / "results") and tree.is_folder(path / "systems")


def find_org_folders(tree: SafeTree, depth: int = 3) -> list[Path]:
    """Organisation folders at `tree.root` or up to `depth` levels below it (round/division/org)."""
    if is_org_folder(tree, tree.root):
        return [tree.root]
    found, level = [], [tree.root]
    for _ in range(depth):
        below = []
        for folder in level:
            for sub in tree.folders(folder):
                (found if is_org_folder(tree, sub) else below).append(sub)
        level = below
    return found
