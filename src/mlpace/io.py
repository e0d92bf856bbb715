"""The bottom floor for files: atomic writes, the safe tree walker, bounded reads, strict JSON.

Everything in mlpace that writes a result or reads a tree from elsewhere goes through here,
so the guarantees of docs/security.md hold in one place. This module imports nothing of
mlpace but the error type.

Trees are untrusted (a published round, a downloaded submission). `SafeTree` reads a tree
as data, never code, and refuses, by name and before opening anything:
- every symbolic link: links out of the tree, links to folders (they can loop), loops,
  dangling links, and links that stay inside (a copy is what a submission should hold);
- folders reached through a link, at any depth below the root (`<org>/results -> /`);
- names that could escape a folder when reused as a path (`..`, separators, NUL, control
  characters, invalid UTF-8);
- files over `MAX_FILE_BYTES` (the one size limit of every verb), folders more than
  `MAX_DEPTH` levels down (code that walks a tree may recurse) and trees of more than
  `MAX_ENTRIES` entries.
The rest of the tree is still read; each refusal is recorded as (path, reason).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlpace.errors import MlpaceError

# The one size limit for any file read from a tree (result logs, LoadGen summaries and detail
# logs, accuracy reports, system descriptions). The largest real published result log is
# about 2.3 MB; a 32 MB file is not a log, and parsing it would only cost memory and minutes.
MAX_FILE_BYTES = 32 * 2**20
MAX_ENTRIES = 200_000        # files and folders visited in one tree
MAX_DEPTH = 64               # folders below the root (a submission needs about 10)
MAX_JSON_DEPTH = 100         # real system descriptions nest 2 levels; Python's parser recurses
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --------------------------------------------------------------------------- names

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
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:   # a file name that was not UTF-8 on disk (surrogate escapes)
        return "is not valid UTF-8"
    return None


def printable(text) -> str:
    """`text` (a path or message) on one line that any terminal can print: control characters
    and bytes that were not UTF-8 on disk are written as escapes, never raw."""
    text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def safe_name(name: str, what: str) -> str:
    """`name` if it is safe as one path component; MlpaceError saying why not otherwise."""
    reason = unsafe_name_reason(str(name))
    if reason:
        raise MlpaceError(f"{what} '{printable(name)}' {reason}; refusing to use it as a file or "
                          "folder name")
    return str(name)


def colliding_names(names, canonical) -> list[tuple[str, str]]:
    """Pairs of `names` that become the same name once `canonical` is applied
    (`Offline` and `offline`): copying both into one folder would silently drop one."""
    seen: dict[str, str] = {}
    pairs = []
    for name in sorted(names):
        key = canonical(name) or name
        if key in seen:
            pairs.append((seen[key], name))
        else:
            seen[key] = name
    return pairs


def refuse_colliding(folder, names, canonical) -> None:
    """MlpaceError naming the first pair of `names` that collide once canonicalised."""
    pairs = colliding_names(names, canonical)
    if pairs:
        first, second = pairs[0]
        raise MlpaceError(f"{folder} holds both {first!r} and {second!r}, which are the same name "
                          f"once canonicalised ({canonical(first) or first!r}); keep only one")


# --------------------------------------------------------------------------- writing

def out_folder(text: str) -> Path:
    """A folder an option names for writing (`--out`, `--data-dir`). Empty is refused:
    `--out "$UNSET"` would otherwise write into the current folder; so is an existing file
    (checked before any work)."""
    path = _named_path(text, "a folder")
    if path.exists() and not path.is_dir():
        raise MlpaceError(f"{text} exists and is not a folder")
    return path


def out_file(text: str) -> Path:
    """A file an option names for writing (`--json`, `--csv`): not empty, not a folder."""
    path = _named_path(text, "an output file")
    if path.is_dir():
        raise MlpaceError(f"{text} is a folder; name a file")
    return path


def _named_path(text: str, what: str) -> Path:
    if not str(text).strip():
        raise MlpaceError(f"an empty name is not {what}")
    return Path(text)


def refuse_writing_into(target: str | os.PathLike, trees, option: str, top_ok: bool = False) -> None:
    """Nothing is written into a tree a verb reads: `package runs/ --out runs/sub` would be
    found by the next package of runs/ as a second copy of every result, and a --json inside
    a checked tree becomes part of the tree. `top_ok`: a file right in a tree's top folder is
    never read as part of it (`mlpace check . --json report.json`)."""
    where = Path(target).resolve()
    for tree in trees:
        tree = Path(tree).resolve()
        if top_ok and where.parent == tree:
            continue
        if where == tree or tree in where.parents:
            raise MlpaceError(f"{option} {printable(target)} is inside {printable(tree)}, which this "
                              "command reads; write it somewhere else")


def refuse_linked_folders(root: Path, names) -> None:
    """Folders under an existing output folder that mlpace writes into must be real folders:
    a `site/assets -> /elsewhere` left by someone else would send the writes outside --out.
    A name may be a relative path (`org/results/system`): each folder on it is checked.
    (A link as --out itself is the user's own choice, and is followed.)"""
    for name in names:
        path = Path(root)
        for part in Path(name).parts:
            path = path / part
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise MlpaceError(f"{path} is a symbolic link or not a folder; mlpace writes only "
                                  "inside --out: remove it or choose another --out")


def make_folder(path: str | os.PathLike) -> Path:
    """Create the folder `path` (and its parents) if needed, with errors as one line."""
    path = out_folder(str(path))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MlpaceError(f"cannot create {path}: {err.strerror or err}") from None
    return path


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` via a temporary file and a rename: readers (and a crash) see the
    old file or the new one, never half of one. The one atomic writer of mlpace."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        raise MlpaceError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _finite_or_none(value):
    """NaN and infinities as null: JSON has no spelling for them (json's `NaN` is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def json_text(data, indent: int | None = 2) -> str:
    """Strict JSON (non-finite numbers written as null, never as `NaN`), with a final newline."""
    return json.dumps(_finite_or_none(data), indent=indent, default=str, allow_nan=False) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) can
# send the sheet's data away): names read from submission trees are untrusted.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading apostrophe
    (OWASP's advice; spreadsheets show the text as it was); numbers, a number written as text
    ("-3.5") and a lone "-" as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS) or value in FORMULA_STARTS:
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def csv_text(columns: list[str], rows: list[dict]) -> str:
    """Rows as CSV (only `columns`, in that order; None as an empty cell), formula-safe."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else spreadsheet_safe(row.get(c))) for c in columns})
    return buffer.getvalue()


# --------------------------------------------------------------------------- reading

def open_limited(path: str | os.PathLike, limit: int = MAX_FILE_BYTES):
    """A binary file object for a regular file at `path` (never through a final link), checked
    against `limit` on the opened file itself, so nothing can be swapped in between. The one
    way mlpace opens a file from a tree."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MlpaceError(f"{path} does not exist") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise MlpaceError(f"{path} is a symbolic link; refused (links are never followed "
                              "out of a tree)") from None
        if err.errno == errno.EISDIR:
            raise MlpaceError(f"{path} is a folder, not a file") from None
        raise MlpaceError(f"cannot read {path}: {err.strerror or err}") from None
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise MlpaceError(f"{path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise MlpaceError(f"{path} is not a regular file (a device, pipe or socket); refused")
    if info.st_size > limit:
        os.close(fd)
        raise MlpaceError(too_big(path, info.st_size, limit))
    return os.fdopen(fd, "rb")


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MB" if count >= 2**20 else f"{count} bytes"


def too_big(path, size: int, limit: int = MAX_FILE_BYTES) -> str:
    return (f"{path} is {_size(size)}, over the {_size(limit)} limit for a file in a tree; "
            "refusing to read it")


def read_bytes_limited(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> bytes:
    with open_limited(path, limit) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:      # grew after the check
        raise MlpaceError(too_big(path, len(data), limit))
    return data


def read_text_limited(path: str | os.PathLike, limit: int = MAX_FILE_BYTES,
                      encoding: str = "latin-1") -> str:
    """A file's text, refusing links and sizes over `limit` (latin-1 by default, like the
    official MLPerf log parser: every byte decodes)."""
    return read_bytes_limited(path, limit).decode(encoding, errors="replace")


_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"     # what str.splitlines splits on
_CHUNK = 2**20


def iter_lines_limited(path: str | os.PathLike, limit: int = MAX_FILE_BYTES,
                       encoding: str = "latin-1"):
    """The lines of a file (split as `str.splitlines` splits them), read a megabyte at a time
    so memory is bounded by the chunk and the longest line, not the file; the same refusals
    as `read_text_limited` (the size is checked on the opened file before the first line)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    with open_limited(path, limit) as handle:
        rest = ""
        read = 0
        while True:
            chunk = handle.read(_CHUNK)
            read += len(chunk)
            if read > limit:                 # grew after the check
                raise MlpaceError(too_big(path, read, limit))
            text = rest + decoder.decode(chunk, final=not chunk)
            if not chunk:
                if text:
                    yield from text.splitlines()
                return
            lines = text.splitlines()
            rest = lines.pop() if lines and text[-1] not in _LINE_BREAKS else ""
            yield from lines


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(text: str) -> int:
    """How deep the brackets of a JSON text nest (strings skipped), without recursion."""
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def loads_bounded(text: str, where: str = "JSON text", max_depth: int = MAX_JSON_DEPTH):
    """`json.loads` that refuses nesting deeper than `max_depth` (the parser recurses) and
    non-finite numbers; MlpaceError for anything that is not valid JSON."""
    if json_depth(text) > max_depth:
        raise MlpaceError(f"{where} nests deeper than {max_depth} levels; refused")

    def no_constant(name):
        raise ValueError(f"{name} is not a JSON number")
    try:
        return json.loads(text, parse_constant=no_constant)
    except (ValueError, RecursionError) as err:
        raise MlpaceError(f"{where} is not valid JSON: {err}") from None


def read_option_file(path: str | os.PathLike, what: str) -> str:
    """A file named by an option (--config, --system-desc): the user's own link is followed,
    but only a regular file is read (a FIFO would block, /dev/zero never ends), within the
    size limit, and bytes that are not UTF-8 decode to U+FFFD, so the parser names the spot."""
    try:
        return read_text_limited(Path(path).resolve(), encoding="utf-8")
    except MlpaceError as err:
        raise MlpaceError(f"{what}: {err}") from None


def read_json_limited(path: str | os.PathLike, limit: int = MAX_FILE_BYTES):
    """A JSON file from an untrusted tree (system descriptions, scaling.json, measurements)."""
    return loads_bounded(read_text_limited(path, limit, encoding="utf-8"), str(path))


# --------------------------------------------------------------------------- the tree walker

def _link_reason(path: Path, real_root: Path) -> str:
    """Why the symbolic link `path` is refused (it always is), in words a person can act on."""
    real = Path(os.path.realpath(path))
    if not (real == real_root or real_root in real.parents):
        return "is a symbolic link to a place outside the tree; refused"
    try:
        target = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symbolic link loop; refused"
        return "is a dangling symbolic link (its target does not exist); refused"
    if stat.S_ISDIR(target.st_mode):
        return "is a symbolic link to a folder; skipped (links can loop)"
    return "is a symbolic link; refused (copy the file into the tree instead)"


def _too_deep() -> str:
    return f"is more than {MAX_DEPTH} folders below the root of the tree; skipped"


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
        self._sound: set[Path] = {self.root}     # folders checked link-free from the root down

    def refuse(self, path: Path | str, reason: str) -> None:
        """Record a refusal; the path is kept printable (a hostile name may hold a newline)."""
        entry = (printable(path), reason)
        if entry not in self.problems:      # folders are often listed twice
            self.problems.append(entry)

    @contextlib.contextmanager
    def safe_copy(self, folder: Path):
        """`folder` itself when nothing in it was refused, else a temporary folder holding
        copies of only its accepted files: for the official checkers, which list a folder
        and open whatever they find there (links and pipes included)."""
        files = self.files(folder)
        inside = [p for p, _ in self.problems if Path(p).parent == Path(printable(folder))]
        if not inside:
            yield Path(folder)
            return
        with tempfile.TemporaryDirectory(prefix="mlpace-safe-") as temp:
            copy = Path(temp, Path(folder).name)      # same name: checkers may read it
            copy.mkdir()
            for path in files:
                (copy / path.name).write_bytes(read_bytes_limited(path, self.max_file_bytes))
            yield copy

    def _lstat(self, path: Path):
        try:
            return os.lstat(path)
        except OSError:
            return None

    def is_folder(self, folder: Path | str) -> bool:
        """True when `folder` is a real folder of this tree, reached from the root without a
        single link; a link on the way is refused (recorded) and gives False. Never follows."""
        folder = Path(folder)
        if folder in self._sound:
            return True
        try:
            parts = folder.relative_to(self.root).parts
        except ValueError:
            self.refuse(folder, "is outside the tree; refused")
            return False
        if len(parts) > MAX_DEPTH:
            self.refuse(folder, _too_deep())
            return False
        current = self.root
        for part in parts:
            current = current / part
            if current in self._sound:
                continue
            if part in ("..", ".") or unsafe_name_reason(part):
                self.refuse(current, f"name {unsafe_name_reason(part) or 'is a relative-folder name'}; skipped")
                return False
            info = self._lstat(current)
            if info is None:
                return False
            if stat.S_ISLNK(info.st_mode):
                self.refuse(current, _link_reason(current, self._real_root))
                return False
            if not stat.S_ISDIR(info.st_mode):
                return False
            self._sound.add(current)
        return True

    def is_file(self, path: Path | str) -> bool:
        """True when `path` is a regular file of this tree within the size limit (see is_folder)."""
        path = Path(path)
        return self.is_folder(path.parent) and path in self.files(path.parent)

    def entries(self, folder: Path) -> list[Path]:
        """Sorted entries of `folder` that are safe to read (refusals recorded); links never are."""
        folder = Path(folder)
        if not self.is_folder(folder):
            return []
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:
            self.refuse(folder, f"cannot be listed: {err.strerror or err}")
            return []
        kept = []
        for name in names:
            path = folder / name
            self.visited += 1
            if self.visited > MAX_ENTRIES:
                raise MlpaceError(f"{self.root} holds more than {MAX_ENTRIES} files and folders; "
                                  "this is not a submission tree")
            reason = unsafe_name_reason(name)
            if reason:
                self.refuse(path, f"name {reason}; skipped")
                continue
            info = self._lstat(path)
            if info is None:
                continue
            if stat.S_ISLNK(info.st_mode):
                self.refuse(path, _link_reason(path, self._real_root))
                continue
            if stat.S_ISDIR(info.st_mode):
                if len(path.parts) - len(self.root.parts) > MAX_DEPTH:
                    self.refuse(path, _too_deep())
                    continue
                self._sound.add(path)
            kept.append(path)
        return kept

    def folders(self, folder: Path) -> list[Path]:
        return [p for p in self.entries(folder) if p in self._sound]

    def files(self, folder: Path) -> list[Path]:
        """Regular files in `folder` within the size limit (links, devices and pipes refused)."""
        kept = []
        for path in self.entries(folder):
            if path in self._sound:
                continue
            info = self._lstat(path)
            if info is None or not stat.S_ISREG(info.st_mode):
                if info is not None:
                    self.refuse(path, "is not a regular file (a device, pipe or socket); skipped")
                continue
            if info.st_size > self.max_file_bytes:
                self.refuse(path, f"is {_size(info.st_size)}, over the {_size(self.max_file_bytes)} "
                                  "limit for a file in a tree; skipped")
                continue
            kept.append(path)
        return kept

    def relative(self, path: Path | str) -> str:
        return tree_relative(self.root, path)


def tree_relative(root: Path, path: Path | str) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
