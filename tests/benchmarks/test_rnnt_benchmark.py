"""rnnt: LibriSpeech-layout loader, log-mel features, the RNN-T loss against brute force, WER,
the model learning, and the MLPerf log."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mlpace.benchmarks import make_workload
from mlpace.benchmarks.rnnt import data as libri
from mlpace.benchmarks.rnnt.features import FeatureSpec, LogMel, mel_centres, mel_filterbank, splice
from mlpace.benchmarks.rnnt.loss import rnnt_loss
from mlpace.benchmarks.rnnt.metrics import CharTokenizer, word_error_rate
from mlpace.benchmarks.rnnt.model import RNNT, StackTime
from mlpace.errors import MlpaceError
from mlpace.harness.timed_run import run_once
from mlpace.harness.workload import RunContext

from official_checkers import run_compliance_checker

CLOSED_RULES = (Path(__import__("mlperf_logging").__file__).parent
                / "compliance_checker" / "training_1.1.0" / "closed_rnnt.yaml")


def test_loader_reads_generated_librispeech_layout(tmp_path):
    libri.generate_mini(tmp_path, train_utterances=5, eval_utterances=2, train_speakers=2, eval_speakers=1)
    chapter = tmp_path / "train-clean-100" / "1" / "101"
    assert (chapter / "1-101-0000.flac").is_file() and (chapter / "1-101.trans.txt").is_file()
    first = (chapter / "1-101.trans.txt").read_text().splitlines()[0]
    assert re.fullmatch(r"1-101-0000 [A-Z' ]+", first)
    train, held_out = libri.list_splits(tmp_path)
    assert len(train) == 5 and len(held_out) == 2
    assert held_out[0].path.parent.parent.parent.name == "dev-clean"
    assert train[0].text == libri.normalize_transcript(first.split(" ", 1)[1])
    audio = libri.read_audio(train[0].path)
    assert audio.dtype == np.float32 and audio.size == pytest.approx(train[0].seconds * 16000)
    assert 0.01 < np.abs(audio).max() <= 1.0
    # the duration filter of the training set (the reference keeps utterances up to 16.7 s)
    assert libri.list_subset(tmp_path, "train-clean-100", max_seconds=0.1) == []


def test_loader_errors_are_one_line(tmp_path):
    with pytest.raises(MlpaceError, match="no LibriSpeech"):
        libri.list_splits(tmp_path)
    libri.generate_mini(tmp_path, train_utterances=1, eval_utterances=1, train_speakers=1, eval_speakers=1)
    (tmp_path / "dev-clean" / "1001" / "1101" / "1001-1101-0099.flac").write_bytes(b"")
    with pytest.raises(MlpaceError, match="1001-1101-0099"):
        libri.list_splits(tmp_path)


def test_evaluation_alone_needs_only_dev_clean(tmp_path):
    """Inference loads the evaluation split without the training subsets (at reference scale
    those are 960 h); the features match what a full setup computes."""
    import shutil
    root = tmp_path / "libri"
    libri.generate_mini(root, train_utterances=2, eval_utterances=2, train_speakers=1, eval_speakers=1)
    chars = {"data_path": str(root), "sentencepiece_vocab": 0}     # the tokenizer is tested below
    # one global batch of the two training utterances, so that the full setup can train
    full = make_workload("rnnt", "reference", {**chars, "batch_size": 2, "grad_accumulation_steps": 1})
    full.prepare_data(tmp_path)
    full.setup(RunContext(seed=1))
    shutil.rmtree(root / "train-clean-100")
    with pytest.raises(MlpaceError, match="no training transcripts"):   # nothing to train pieces on
        make_workload("rnnt", "reference", {"data_path": str(root)}).prepare_data(tmp_path)
    alone = make_workload("rnnt", "reference", chars)
    alone.prepare_data(tmp_path)
    alone.load_evaluation()
    assert not hasattr(alone, "train_audio") and alone.eval_texts == full.eval_texts
    assert all(torch.equal(a, b) for a, b in zip(alone.eval_features, full.eval_features))
    shutil.rmtree(root / "dev-clean")
    with pytest.raises(MlpaceError, match="no dev-clean utterances"):
        alone.load_evaluation()


def test_reference_tokenizer_is_sentencepiece_trained_on_the_training_transcripts(tmp_path):
    """The reference recipe (scripts/create_sentencepieces.sh): a unigram model of N pieces,
    <unk> first, no BOS/EOS, from the training transcripts; made once and cached by their hash."""
    root = tmp_path / "libri"
    libri.generate_mini(root, train_utterances=20, eval_utterances=3, train_speakers=2, eval_speakers=1)
    assert make_workload("rnnt", "reference", {}).config.sentencepiece_vocab == 1023
    w = make_workload("rnnt", "reference", {"data_path": str(root), "sentencepiece_vocab": 40})
    w.prepare_data(tmp_path / "cache")
    w.load_evaluation()
    sp = w.tokenizer.sp
    assert sp.get_piece_size() == 40 and w.tokenizer.n_classes == 41      # + the blank
    assert sp.id_to_piece(0) == "<unk>" and sp.bos_id() == sp.eos_id() == -1
    assert any(len(sp.id_to_piece(i)) > 2 for i in range(40))             # pieces, not characters
    for text in w.eval_texts:
        ids = w.tokenizer.encode(text)
        assert 0 not in ids and w.tokenizer.decode(ids) == text            # the reference asserts no <unk>
    model_file = Path(w.sentencepiece_path)
    assert model_file.name == "librispeech40.model"
    stamp = model_file.stat().st_mtime_ns
    again = make_workload("rnnt", "reference", {"data_path": str(root), "sentencepiece_vocab": 40})
    again.prepare_data(tmp_path / "cache")
    assert again.sentencepiece_path == w.sentencepiece_path and model_file.stat().st_mtime_ns == stamp
    trans = next((root / "train-clean-100").glob("*/*/*.trans.txt"))
    trans.write_text(trans.read_text().replace("THE", "A"))                # other transcripts: other model
    changed = make_workload("rnnt", "reference", {"data_path": str(root), "sentencepiece_vocab": 40})
    changed.prepare_data(tmp_path / "cache")
    assert changed.sentencepiece_path != w.sentencepiece_path
    with pytest.raises(MlpaceError, match="Vocabulary size too high"):   # the real 1023 on a tiny corpus
        make_workload("rnnt", "reference", {"data_path": str(root)}).prepare_data(tmp_path / "cache")


def test_transcripts_are_normalised_like_the_reference():
    assert libri.normalize_transcript("HELLO,  WORLD! IT'S 3") == "hello world it's"
    tok = CharTokenizer()
    assert tok.n_classes == 29 and tok.decode(tok.encode("it's a cat")) == "it's a cat"


def test_log_mel_of_a_pure_tone_peaks_in_its_mel_bin():
    spec = FeatureSpec(n_mels=40, dither=0.0, preemph=0.0, stack=1)
    t = torch.arange(16000) / 16000
    fbank = mel_filterbank(40, 512, 16000)
    centres = mel_centres(40, 16000)
    assert fbank.shape == (40, 257) and np.all(np.diff(centres) > 0)
    for hz in (440.0, 2000.0, 5000.0):
        mel = LogMel(spec).power_mel(torch.sin(2 * np.pi * hz * t))
        assert mel.shape == (101, 40)                           # centred frames every 10 ms
        assert int(mel[50].argmax()) == int(np.abs(centres - hz).argmin()), hz
    # normalised per feature over time: zero mean, unit variance in every mel bin
    noise = LogMel(FeatureSpec(n_mels=40))(torch.randn(8000))
    assert noise.mean(0).abs().max() < 1e-4 and (noise.std(0) - 1).abs().max() < 1e-3
    stacked = splice(torch.arange(10.0)[:, None].repeat(1, 2), 3)
    assert stacked.shape == (4, 6) and stacked[1].tolist() == [3, 3, 4, 4, 5, 5]


def _brute_force_nll(logits: torch.Tensor, y: torch.Tensor, blank: int) -> torch.Tensor:
    """-log of the sum over every alignment (T blanks and U labels, ending in a blank)."""
    lp = logits.log_softmax(-1)
    T, U = lp.shape[0], lp.shape[1] - 1
    paths = []
    for label_steps in itertools.combinations(range(T + U - 1), U):
        t = u = 0
        score = lp.new_zeros(())
        for step in range(T + U - 1):
            if step in label_steps:
                score, u = score + lp[t, u, y[u]], u + 1
            else:
                score, t = score + lp[t, u, blank], t + 1
        paths.append(score + lp[T - 1, U, blank])
    return -torch.logsumexp(torch.stack(paths), 0)


@pytest.mark.parametrize("B,T,U,V", [(1, 1, 1, 3), (1, 3, 2, 4), (3, 4, 3, 5), (2, 5, 4, 6)])
def test_rnnt_loss_matches_brute_force_with_gradients(B, T, U, V):
    torch.manual_seed(T * 10 + U)
    logits = torch.randn(B, T, U + 1, V, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, V - 1, (B, U))
    t_lens = torch.tensor([T - b % T for b in range(B)])
    u_lens = torch.tensor([max(0, U - b) for b in range(B)])
    ours = rnnt_loss(logits, y, t_lens, u_lens, blank=V - 1, reduction="none")
    brute = torch.stack([_brute_force_nll(logits[b, :t_lens[b], :u_lens[b] + 1], y[b, :u_lens[b]], V - 1)
                         for b in range(B)])
    assert torch.allclose(ours, brute, atol=1e-10)
    weights = torch.rand(B, dtype=torch.float64)            # a different weight per utterance
    grad_ours, = torch.autograd.grad((ours * weights).sum(), logits)
    grad_brute, = torch.autograd.grad((brute * weights).sum(), logits)
    assert torch.allclose(grad_ours, grad_brute, atol=1e-10)
    # float32 logits (the training path) agree too
    ours32 = rnnt_loss(logits.detach().float(), y, t_lens, u_lens, blank=V - 1, reduction="none")
    assert torch.allclose(ours32.double(), brute.detach(), atol=1e-4)


def test_rnnt_loss_of_one_frame_one_label_by_hand():
    # T=1, U=1: the only alignment is label then blank: -log(p(y|0,0) p(blank|0,1))
    logits = torch.log(torch.tensor([[[[0.7, 0.2, 0.1], [0.3, 0.1, 0.6]]]]))
    loss = rnnt_loss(logits, torch.tensor([[0]]), torch.tensor([1]), torch.tensor([1]), blank=2)
    assert float(loss) == pytest.approx(-np.log(0.7 * 0.6), abs=1e-6)


def test_word_error_rate_matches_hand_computed_value():
    refs = ["the cat sits on the mat", "a red dog"]
    hyps = ["the cat sit on mat", "a red dog runs"]
    # 1 substitution + 1 deletion in 6 words, 1 insertion in 3: 3 / 9
    assert word_error_rate(refs, hyps) == pytest.approx(3 / 9)
    assert word_error_rate(["a red dog"], [""]) == pytest.approx(1.0)


def test_model_shapes_names_and_stack_time():
    model = RNNT(29, 120, enc_n_hid=16, enc_pre_rnn_layers=1, enc_post_rnn_layers=1, pred_n_hid=8,
                 pred_rnn_layers=1, joint_n_hid=12, enc_dropout=0, pred_dropout=0, joint_dropout=0)
    x, lens = torch.randn(2, 9, 120), torch.tensor([9, 5])
    logits, f_lens = model(x, lens, torch.tensor([[1, 2, 3], [4, 5, 0]]))
    assert logits.shape == (2, 5, 4, 29) and f_lens.tolist() == [5, 3]
    bias = model.encoder["pre_rnn"].bias_ih_l0
    assert torch.all(bias[16:32] == 1.0) and torch.all(model.encoder["pre_rnn"].bias_hh_l0[16:32] == 0)
    stacked, n = StackTime(2)(torch.arange(6.0).reshape(3, 1, 2), torch.tensor([3]))
    assert stacked[:, 0].tolist() == [[0, 1, 2, 3], [4, 5, 0, 0]] and n.tolist() == [2]
    hyps = model.greedy_decode(x, lens, max_symbols_per_step=2, max_symbols=4)
    assert len(hyps) == 2 and all(len(h) <= 4 for h in hyps)


def test_reference_config_logs_closed_rule_keys(tmp_path):
    w = make_workload("rnnt", "reference", {"data_path": str(tmp_path)})
    hp = w.hyperparameters()
    closed = set(re.findall(r"NAME:\s+(\w+)", CLOSED_RULES.read_text()))
    logged_by_harness = {"weights_initialization", "train_samples", "eval_samples", "eval_accuracy"}
    assert closed - logged_by_harness <= set(hp)
    # the values the closed rules check
    assert hp["opt_name"] == "lamb" and hp["opt_lamb_epsilon"] == 1e-9 and hp["opt_weight_decay"] == 1e-3
    assert hp["opt_gradient_clip_norm"] in [1, float("inf")] and hp["opt_lamb_learning_rate_min"] == 1e-5
    assert (hp["data_speed_perturbaton_min"], hp["data_speed_perturbaton_max"]) == (0.85, 1.15)
    assert (hp["data_spec_augment_freq_n"], hp["data_spec_augment_freq_max"]) == (2, 20)
    assert (hp["data_spec_augment_time_n"], hp["data_spec_augment_time_max"]) == (10, 0.03)
    assert hp["eval_max_prediction_symbols"] == 300 and hp["global_batch_size"] == 1024
    assert hp["opt_base_learning_rate"] == 4e-3 and hp["model_eval_ema_factor"] == 0.999
    assert w.scale_spec.target == 0.058
    tensors = re.search(r"sorted\(\[(.*?)\]\)", CLOSED_RULES.read_text()).group(1)
    assert sorted(w.initialized_tensors()) == sorted(re.findall(r"'(\w+)'", tensors))
    with pytest.raises(MlpaceError, match="data_path"):
        make_workload("rnnt", "reference", {}).prepare_data(tmp_path)


def test_reference_model_has_the_mlperf_sizes():
    cfg = make_workload("rnnt", "reference", {}).config
    model = RNNT(1024, cfg.n_mels * cfg.frame_stack, cfg.enc_n_hid, cfg.enc_pre_rnn_layers,
                 cfg.enc_post_rnn_layers, cfg.enc_stack_time_factor, cfg.enc_dropout, cfg.pred_n_hid,
                 cfg.pred_rnn_layers, cfg.pred_dropout, cfg.joint_n_hid, cfg.joint_dropout)
    pre, post = model.encoder["pre_rnn"], model.encoder["post_rnn"]
    assert (pre.input_size, pre.hidden_size, pre.num_layers) == (240, 1024, 2)
    assert (post.input_size, post.num_layers) == (2048, 3)
    assert model.prediction["dec_rnn"].hidden_size == 512 and model.prediction["dec_rnn"].num_layers == 2
    assert model.joint_net[-1].out_features == 1024 and model.joint_enc.out_features == 512
    # ~49 M parameters, as the reference RNN-T
    assert 45e6 < sum(p.numel() for p in model.parameters()) < 52e6


def test_training_steps_lower_the_loss(tmp_path):
    w = make_workload("rnnt", "mini", {"train_utterances": 8, "eval_utterances": 2, "batch_size": 8,
                                       "warmup_epochs": 0, "optimizer": "adam", "base_lr": 0.005, "speed_min": 1.0,
                                       "speed_max": 1.0, "freq_masks": 0, "time_masks": 0})
    w.prepare_data(tmp_path)
    w.setup(RunContext(seed=1))
    assert w.train_samples() == 8 and w.eval_samples() == 2
    assert w.learning_rate(0, 1) == pytest.approx(0.005)
    for epoch in range(1, 13):
        assert sum(w.train_epoch(epoch)) == 8
    assert w.losses[-1] < 0.7 * w.losses[0], w.losses     # one batch: the same 8 utterances


def test_global_batch_is_whole_and_splits_into_equal_micro_batches(tmp_path):
    """The reference's 8 accumulation steps on a training set smaller than one global batch
    used to split it into empty micro-batches (IndexError in the middle of the timed run);
    now a short set or a batch the steps do not divide is one line before the run, and a
    whole batch trains in equal micro-batches."""
    root = tmp_path / "libri"
    libri.generate_mini(root, train_utterances=4, eval_utterances=1, train_speakers=1, eval_speakers=1)
    base = {"data_path": str(root), "sentencepiece_vocab": 0, "enc_n_hid": 32, "pred_n_hid": 16,
            "joint_n_hid": 16, "eval_batch_size": 1}
    for bad, match in (({"batch_size": 16}, "4 training utterances .* fewer than one global batch of 16"),
                       ({"batch_size": 4, "grad_accumulation_steps": 3}, "multiple of grad_accumulation_steps 3")):
        w = make_workload("rnnt", "reference", {**base, **bad})
        w.prepare_data(tmp_path)
        with pytest.raises(MlpaceError, match=match):
            w.setup(RunContext(seed=1))
    w = make_workload("rnnt", "reference", {**base, "batch_size": 4, "grad_accumulation_steps": 2})
    w.prepare_data(tmp_path)
    w.setup(RunContext(seed=1))
    assert list(w.train_epoch(1)) == [4] and len(w.losses) == 2     # one step of two micro-batches


@pytest.mark.slow
def test_mini_run_learns_and_log_passes_compliance_checker(tmp_path, data_root):
    w = make_workload("rnnt", "mini", {})
    log = tmp_path / "rnnt.log"
    untrained = []
    outcome = run_once(w, RunContext(seed=2, data_dir=data_root), log, max_epochs=12,
                       after_init=lambda: untrained.append(w.evaluate(0)))
    assert untrained[0] >= 0.95 and outcome.quality < 0.5, (untrained, outcome.evals)
    ok, out = run_compliance_checker(log)
    assert ok, out
    lines = [json.loads(l.split(":::MLLOG", 1)[1]) for l in log.read_text().splitlines() if ":::MLLOG" in l]
    keys = {l["key"] for l in lines}
    assert {"data_spec_augment_freq_n", "model_eval_ema_factor", "weights_initialization"} <= keys
    assert [l["value"] for l in lines if l["key"] == "train_samples"] == [480]
