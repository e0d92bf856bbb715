"""Go rules of minigo against hand-made positions: captures, suicide, ko, area scoring, komi."""

import pytest

from mlpace.benchmarks.minigo.go import BLACK, EMPTY, WHITE, IllegalMove, Position


def at(row, col, size=5):
    return row * size + col


def test_single_stone_capture_removes_the_stone():
    pos = Position.from_text([".X...",
                              "XO...",
                              ".X...",
                              ".....",
                              "....."])
    after = pos.play(at(1, 2))
    assert after.board[at(1, 1)] == EMPTY
    assert after.board[at(1, 2)] == BLACK
    assert after.to_play == WHITE


def test_group_capture_in_the_corner():
    pos = Position.from_text(["OO...",
                              "XX...",
                              ".....",
                              ".....",
                              "....."], to_play=BLACK)
    after = pos.play(at(0, 2))
    assert after.board[at(0, 0)] == EMPTY and after.board[at(0, 1)] == EMPTY
    assert after.area() == (25, 0)   # black owns the whole board now


def test_suicide_is_illegal_but_filling_own_eye_is_not():
    pos = Position.from_text([".X...",
                              "X.X..",
                              ".X...",
                              ".....",
                              "....."], to_play=WHITE)
    assert not pos.legal_moves()[at(1, 1)]
    with pytest.raises(IllegalMove):
        pos.play(at(1, 1))
    black = Position.from_text([".X...", "X.X..", ".X...", ".....", "....."], to_play=BLACK)
    assert black.legal_moves()[at(1, 1)]


def test_multi_stone_suicide_is_illegal_and_the_capturing_move_is_legal():
    rows = [".XO..",
            "XO...",
            "O....",
            ".....",
            "....."]
    black = Position.from_text(rows, to_play=BLACK)
    assert not black.legal_moves()[at(0, 0)]          # would leave three black stones dead
    white = Position.from_text(rows, to_play=WHITE)
    assert white.legal_moves()[at(0, 0)]              # no liberty, but it captures
    after = white.play(at(0, 0))
    assert after.board[at(0, 1)] == EMPTY and after.board[at(1, 0)] == EMPTY


def test_occupied_point_is_illegal():
    pos = Position.from_text(["X....", ".....", ".....", ".....", "....."], to_play=WHITE)
    assert not pos.legal_moves()[0]
    with pytest.raises(IllegalMove):
        pos.play(0)


def test_ko_forbids_immediate_recapture_then_allows_it():
    pos = Position.from_text([".XO..",
                              "XO.O.",
                              ".XO..",
                              ".....",
                              "....."], to_play=BLACK)
    taken = pos.play(at(1, 2))                        # black takes the ko
    assert taken.board[at(1, 1)] == EMPTY
    assert taken.ko == at(1, 1)
    assert not taken.legal_moves()[at(1, 1)]          # white may not retake at once
    with pytest.raises(IllegalMove):
        taken.play(at(1, 1))
    later = taken.play(at(4, 4)).play(at(4, 0))       # a ko threat elsewhere and an answer
    assert later.ko is None and later.legal_moves()[at(1, 1)]
    retaken = later.play(at(1, 1))
    assert retaken.board[at(1, 2)] == EMPTY           # white retook the single stone


def test_capturing_two_stones_is_not_ko():
    pos = Position.from_text(["OO...",
                              "XX...",
                              ".....",
                              ".....",
                              "....."], to_play=BLACK)
    assert pos.play(at(0, 2)).ko is None


def test_area_scoring_with_komi_and_neutral_points():
    rows = [".XO..",
            ".XO..",
            ".XO..",
            ".XO..",
            ".XO.."]
    pos = Position.from_text(rows, komi=0.5)
    assert pos.area() == (10, 15)
    assert pos.score() == pytest.approx(-5.5)
    assert pos.winner() == WHITE
    # a point touching both colours is nobody's
    pos = Position.from_text(["X.O", "X.O", "X.O"], komi=0.5)
    assert pos.area() == (3, 3)
    assert pos.winner() == WHITE                      # komi decides an even board
    assert Position.from_text(["X.O", "X.O", "X.O"], komi=-0.5).winner() == BLACK


def test_two_passes_end_the_game_and_a_move_resets_the_count():
    pos = Position(5, komi=3.5)
    one = pos.play(pos.pass_move)
    assert not one.is_game_over() and one.to_play == WHITE
    assert not one.play(at(2, 2)).play(pos.pass_move).is_game_over()
    two = one.play(pos.pass_move)
    assert two.is_game_over()
    assert two.winner() == WHITE                      # empty board: komi wins


def test_game_ends_at_the_move_limit():
    pos = Position(3, komi=0.5, max_moves=2)
    assert pos.play(0).play(8).is_game_over()
