"""The rules of Go on a square board (5x5 mini, 19x19 reference), as MiniGo plays them.

Stones are captured when their group has no liberties; suicide (a move that leaves its own
group without liberties and captures nothing) is illegal; simple ko forbids retaking a single
stone at once; the game ends after two passes in a row (or at `max_moves`) and is scored by
area (stones + territory surrounded by one colour only), with komi given to White.

Moves are integers: `row * size + col` for a point, and `size * size` for a pass (the same
index as the network's policy output). A `Position` is immutable: `play` returns a new one.
It keeps the boards of its last `HISTORY` predecessors (most recent first), which the MLPerf
input features read (the stones of the last four positions).
"""

from __future__ import annotations

from functools import lru_cache

EMPTY, BLACK, WHITE = 0, 1, -1
HISTORY = 3   # previous boards a position keeps (mlperf07 features: this one + 3 before it)


class IllegalMove(ValueError):
    pass


@lru_cache(maxsize=None)
def neighbours(size: int) -> tuple[tuple[int, ...], ...]:
    """For every point, the points orthogonally next to it."""
    out = []
    for p in range(size * size):
        r, c = divmod(p, size)
        out.append(tuple(rr * size + cc for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                         if 0 <= rr < size and 0 <= cc < size))
    return tuple(out)


def flood(board, start: int, nbrs) -> tuple[set[int], set[int]]:
    """The connected points holding the same value as `start` (a group of stones, or an
    empty region), and the points next to them that hold something else."""
    value = board[start]
    region, edge, todo = {start}, set(), [start]
    while todo:
        p = todo.pop()
        for n in nbrs[p]:
            if board[n] != value:
                edge.add(n)
            elif n not in region:
                region.add(n)
                todo.append(n)
    return region, edge


def group_and_liberties(board, start: int, nbrs) -> tuple[set[int], set[int]]:
    """The group of stones that holds `start`, and its liberties."""
    group, edge = flood(board, start, nbrs)
    return group, {p for p in edge if board[p] == EMPTY}


class Position:
    __slots__ = ("size", "board", "to_play", "ko", "passes", "moves", "komi", "max_moves",
                 "history", "_legal", "_liberties")

    def __init__(self, size: int, komi: float, board: tuple[int, ...] | None = None,
                 to_play: int = BLACK, ko: int | None = None, passes: int = 0, moves: int = 0,
                 max_moves: int | None = None, history: tuple[tuple[int, ...], ...] = ()):
        self.size, self.komi = size, komi
        self.board = tuple(board) if board is not None else (EMPTY,) * (size * size)
        self.to_play, self.ko, self.passes, self.moves = to_play, ko, passes, moves
        self.max_moves = max_moves if max_moves is not None else 2 * size * size
        self.history = history          # earlier boards, most recent first, at most HISTORY
        self._legal: list[bool] | None = None
        self._liberties: list[int] | None = None

    @classmethod
    def from_text(cls, rows: list[str], komi: float = 0.5, to_play: int = BLACK,
                  ko: int | None = None) -> "Position":
        """A position from rows of 'X' (black), 'O' (white) and '.' (empty); for tests and docs."""
        codes = {"X": BLACK, "O": WHITE, ".": EMPTY}
        board = [codes[ch] for row in rows for ch in row.replace(" ", "")]
        return cls(len(rows), komi, tuple(board), to_play=to_play, ko=ko)

    @property
    def pass_move(self) -> int:
        return self.size * self.size

    def is_game_over(self) -> bool:
        return self.passes >= 2 or self.moves >= self.max_moves

    def legal_moves(self) -> list[bool]:
        """One flag per move (points, then pass). Pass is always legal."""
        if self._legal is None:
            self._legal = self._compute_legal()
        return self._legal

    def liberties(self) -> list[int]:
        """Per point: the liberties of the group of stones on it (0 on an empty point)."""
        if self._liberties is None:
            board, nbrs = self.board, neighbours(self.size)
            counts = [0] * len(board)
            for p in range(len(board)):
                if board[p] != EMPTY and counts[p] == 0:
                    group, libs = group_and_liberties(board, p, nbrs)
                    for q in group:
                        counts[q] = len(libs)
            self._liberties = counts
        return self._liberties

    def _compute_legal(self) -> list[bool]:
        board, nbrs, me = self.board, neighbours(self.size), self.to_play
        liberty_count = self.liberties()
        legal = []
        for p in range(len(board)):
            ok = False
            if board[p] == EMPTY and p != self.ko:
                for n in nbrs[p]:
                    if (board[n] == EMPTY                                     # a liberty
                            or (board[n] == me and liberty_count[n] > 1)      # joins a living group
                            or (board[n] == -me and liberty_count[n] == 1)):  # captures
                        ok = True
                        break
            legal.append(ok)
        legal.append(True)
        return legal

    def play(self, move: int) -> "Position":
        """The position after `move` by the player to play; IllegalMove if it is not allowed."""
        history = ((self.board,) + self.history)[:HISTORY]
        if move == self.pass_move:
            return Position(self.size, self.komi, self.board, -self.to_play, None,
                            self.passes + 1, self.moves + 1, self.max_moves, history)
        if not (0 <= move < self.pass_move) or not self.legal_moves()[move]:
            raise IllegalMove(f"illegal move {move} for {'black' if self.to_play == BLACK else 'white'}")
        nbrs, me = neighbours(self.size), self.to_play
        board = list(self.board)
        board[move] = me
        captured: list[int] = []
        for n in nbrs[move]:
            if board[n] == -me:
                group, libs = group_and_liberties(board, n, nbrs)
                if not libs:
                    for q in group:
                        board[q] = EMPTY
                    captured.extend(group)
        ko = None
        if len(captured) == 1:
            group, libs = group_and_liberties(board, move, nbrs)
            if len(group) == 1 and libs == {captured[0]}:
                ko = captured[0]   # the lone capturing stone could be retaken at once: forbid it
        return Position(self.size, self.komi, tuple(board), -me, ko, 0, self.moves + 1, self.max_moves,
                        history)

    def area(self) -> tuple[int, int]:
        """(black, white) area: stones plus empty regions that touch only that colour."""
        board, nbrs = self.board, neighbours(self.size)
        black = sum(1 for v in board if v == BLACK)
        white = sum(1 for v in board if v == WHITE)
        seen: set[int] = set()
        for p in range(len(board)):
            if board[p] != EMPTY or p in seen:
                continue
            region, edge = flood(board, p, nbrs)
            borders = {board[q] for q in edge}
            seen |= region
            if borders == {BLACK}:
                black += len(region)
            elif borders == {WHITE}:
                white += len(region)
        return black, white

    def score(self) -> float:
        """Black's area minus White's area minus komi (> 0: Black wins)."""
        black, white = self.area()
        return black - white - self.komi

    def winner(self) -> int:
        return BLACK if self.score() > 0 else WHITE

    def __repr__(self) -> str:
        chars = {BLACK: "X", WHITE: "O", EMPTY: "."}
        rows = ["".join(chars[v] for v in self.board[r * self.size:(r + 1) * self.size])
                for r in range(self.size)]
        return "\n".join(rows) + f"\n({'X' if self.to_play == BLACK else 'O'} to play)"
