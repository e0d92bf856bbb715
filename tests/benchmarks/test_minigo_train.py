"""MiniGo: weights files, the win-rate metric, learning, the mini log, the reference config."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mlpace.benchmarks import make_workload
from mlpace.benchmarks.minigo.go import BLACK, Position
from mlpace.benchmarks.minigo.data import SHIPPED_REFERENCE, features, symmetry, training_examples
from mlpace.benchmarks.minigo.mcts import match, network_evaluator, play_games
from mlpace.benchmarks.minigo.model import load_weights, save_weights, search_network
from mlpace.benchmarks.minigo.workload import CONFIGS, Generations, new_model
from mlpace.errors import MlpaceError
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext
from official_checkers import run_compliance_checker

def at(row, col, size=5):
    return row * size + col


TINY = {"selfplay_games": 8, "readouts": 4, "train_steps": 4, "batch_size": 32, "eval_games": 4}


def scripted(fill: bool):
    """An evaluator that always wants the first legal point (fill) or always wants to pass."""
    def evaluate(positions):
        priors = np.zeros((len(positions), positions[0].size ** 2 + 1))
        for row, pos in enumerate(positions):
            legal = pos.legal_moves()
            points = [i for i, ok in enumerate(legal[:-1]) if ok]
            priors[row, points[0] if fill and points else len(legal) - 1] = 1.0
        return priors, np.zeros(len(positions))
    return evaluate


def test_win_rate_matches_hand_computed_games():
    new = lambda: Position(3, komi=0.5)  # noqa: E731
    rng = np.random.default_rng(0)
    # both pass at once: White wins every game on komi, and the candidate is White in half of them
    assert match(scripted(False), scripted(False), 4, new, 1, rng, 0) == 0.5
    # a player that fills the board beats one that only passes, with either colour
    assert match(scripted(True), scripted(False), 4, new, 1, rng, 0) == 1.0
    assert match(scripted(False), scripted(True), 6, new, 1, rng, 0) == 0.0


def test_features_and_symmetries_move_stones_and_moves_together():
    pos = Position.from_text(["X..", "...", "..O"], to_play=BLACK)
    planes = features([pos])
    assert planes[0, 0, 0, 0] == 1 and planes[0, 1, 2, 2] == 1 and planes[0, 2].min() == 1
    x = torch.from_numpy(planes)
    policy = torch.zeros(1, 10)
    policy[0, 0], policy[0, 9] = 0.75, 0.25          # the black stone's point, and pass
    for k in range(8):
        tx, tp = symmetry(x, policy, k)
        assert torch.equal(tp[0, :9].reshape(3, 3) == 0.75, tx[0, 0] == 1)
        assert tp[0, 9] == 0.25


def test_mlperf07_features_by_hand():
    """The reference's 13 input planes: stones of this position and the 3 before it (zeros
    before the game began), black to play, groups with 1 / 2 / >= 3 liberties, capturing points."""
    start = Position.from_text([".....",
                                "XO...",
                                ".X...",
                                ".....",
                                "....."], to_play=BLACK)
    pos = start.play(at(0, 1)).play(at(4, 4))      # black ataris the white stone, white plays away
    planes = features([pos], "mlperf07")
    assert planes.shape == (1, 13, 5, 5)
    me, them = planes[0, 0], planes[0, 1]          # black to play
    assert me[1, 0] == me[0, 1] == me[2, 1] == 1 and me.sum() == 3
    assert them[1, 1] == them[4, 4] == 1 and them.sum() == 2
    assert planes[0, 3, 4, 4] == 0 and planes[0, 3, 1, 1] == 1   # one move ago: no white (4,4) yet
    assert planes[0, 4, 0, 1] == 0 and planes[0, 4, 1, 0] == 1   # two moves ago: no black (0,1)
    assert planes[0, 6:8].sum() == 0                              # three moves ago: before the game
    assert planes[0, 8].min() == 1                                # black to play
    libs = planes[0, 9:12]
    assert libs[0, 1, 1] == 1 and libs[0].sum() == 1              # white (1,1) in atari
    assert libs[1, 0, 1] == libs[1, 1, 0] == libs[1, 4, 4] == 1 and libs[1].sum() == 3
    assert libs[2, 2, 1] == 1 and libs[2].sum() == 1              # black (2,1): 3 liberties
    assert planes[0, 12, 1, 2] == 1 and planes[0, 12].sum() == 1  # only (1,2) captures
    white = features([pos.play(at(3, 3))], "mlperf07")[0]         # after black plays away
    assert white[8].max() == 0 and white[0, 1, 1] == 1            # white to play, its own stones first


def test_reference_network_plays_and_learns_on_19x19():
    """The reference set-up runs end to end on the full board: self-play with the 13-plane
    network, training examples, one optimizer step."""
    cfg = CONFIGS["reference"]
    assert (cfg.board_size, cfg.features) == (19, "mlperf07")
    torch.manual_seed(0)
    model = new_model(cfg).eval()
    evaluate = network_evaluator(model)
    gen = play_games(2, lambda: Position(19, cfg.komi, max_moves=6), lambda g, c: evaluate, 2,
                     np.random.default_rng(0), sample_moves=2, noise=(cfg.dirichlet_alpha, cfg.noise_weight))
    try:
        while True:
            next(gen)
    except StopIteration as done:
        games = done.value
    planes, policies, outcomes = training_examples(games, cfg.features)
    assert planes.shape == (12, 13, 19, 19) and policies.shape == (12, 362) and outcomes.shape == (12,)
    x, pi = symmetry(torch.from_numpy(planes), torch.from_numpy(policies), 5)
    model.train()
    logits, value = model(x)
    loss = -(pi * torch.log_softmax(logits, 1)).sum(1).mean() + ((value - torch.from_numpy(outcomes)) ** 2).mean()
    loss.backward()
    assert torch.isfinite(loss) and model.stem.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("feature_set", ["basic", "mlperf07"])
def test_search_network_is_the_eval_forward_with_batch_norms_folded(feature_set):
    torch.manual_seed(0)
    model = new_model(CONFIGS["mini"]) if feature_set == "basic" else new_model(CONFIGS["reference"])
    for module in model.modules():      # batch norm statistics far from the initial 0 / 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            if module.affine:
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    size = model.board_size
    x = (torch.rand(6, 3 if feature_set == "basic" else 13, size, size) > 0.5).float()
    with torch.no_grad():
        logits, value = model(x)
        folded_logits, folded_value = search_network(model)(x)
    assert torch.allclose(folded_logits, logits, atol=1e-4) and torch.allclose(folded_value, value, atol=1e-5)


def test_weights_file_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    model = new_model(CONFIGS["mini"]).eval()
    path = tmp_path / "player.json"
    save_weights(model, path)
    loaded = load_weights(path)
    x = torch.from_numpy(features([Position(5, 3.5).play(12)]))
    with torch.no_grad():
        (p1, v1), (p2, v2) = model(x), loaded(x)
    assert torch.allclose(p1, p2, atol=2e-2) and torch.allclose(v1, v2, atol=2e-2)
    (tmp_path / "bad.json").write_text("{\"format\": 1}")
    with pytest.raises(MlpaceError, match="not a minigo weights file"):
        load_weights(tmp_path / "bad.json")
    with pytest.raises(MlpaceError, match="cannot read"):
        load_weights(tmp_path / "missing.json")


@pytest.mark.slow
def test_shipped_reference_player_beats_an_untrained_network():
    cfg = CONFIGS["mini"]
    reference = load_weights(SHIPPED_REFERENCE)
    torch.manual_seed(3)
    untrained = new_model(cfg).eval()
    rate = match(network_evaluator(untrained), network_evaluator(reference), 20,
                 lambda: Position(cfg.board_size, cfg.komi), cfg.readouts, np.random.default_rng(0),
                 cfg.eval_sample_moves)
    assert rate <= 0.3


@pytest.mark.slow
def test_one_generation_of_selfplay_learns_to_beat_an_untrained_network():
    run = Generations(CONFIGS["mini"], seed=5)     # one generation of the mini recipe
    for _ in run.selfplay():
        pass
    for _ in run.train():
        pass
    torch.manual_seed(7)
    untrained = new_model(CONFIGS["mini"]).eval()
    assert run.match(untrained, 20, np.random.default_rng(1)) >= 0.7


@pytest.mark.slow
def test_short_mini_run_log_passes_the_open_rules(tmp_path, data_root):
    workload = make_workload("minigo", "mini", TINY)
    log = tmp_path / "minigo.txt"
    outcome = run_once(workload, RunContext(seed=2, data_dir=data_root), log, max_epochs=1)
    assert outcome.epochs == 1 and len(outcome.evals) == 1
    assert 0.0 <= outcome.quality <= 1.0
    ok, out = run_compliance_checker(log)
    assert ok, out


def closed_rule_tensors() -> list[str]:
    import mlperf_logging
    rules = (Path(mlperf_logging.__file__).parent / "compliance_checker" / "training_1.1.0"
             / "closed_minigo.yaml").read_text()
    start = rules.index("sorted([")
    block = rules[start:rules.index("])", start)]
    return re.findall(r'"([^"]+)"', block)


def test_reference_config_logs_the_closed_rule_keys(tmp_path):
    player = tmp_path / "target.json"
    save_weights(new_model(CONFIGS["reference"]), player)
    workload = make_workload("minigo", "reference", {"reference_player": str(player)})
    workload.prepare_data(tmp_path)
    workload.setup(RunContext(seed=0, data_dir=tmp_path))
    hp = workload.hyperparameters()
    for key in ("train_batch_size", "lr_boundaries", "lr_rates", "gradient_accumulation_steps",
                "actual_selfplay_games_per_generation", "min_selfplay_games_per_generation"):
        assert key in hp, key
    assert hp["min_selfplay_games_per_generation"] == 8192
    assert hp["actual_selfplay_games_per_generation"] >= 8192
    assert sorted(workload.initialized_tensors()) == sorted(closed_rule_tensors())


def test_reference_scale_without_a_player_and_odd_eval_games_are_clear_errors(tmp_path):
    with pytest.raises(MlpaceError, match="reference_player"):
        make_workload("minigo", "reference", {}).prepare_data(tmp_path)
    with pytest.raises(MlpaceError, match="even"):
        make_workload("minigo", "mini", {"eval_games": 3}).prepare_data(tmp_path)
    with pytest.raises(MlpaceError, match="not found"):
        make_workload("minigo", "mini", {"reference_player": str(tmp_path / "nope.json")}).prepare_data(tmp_path)
