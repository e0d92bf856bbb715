"""bert at mini scale: SQuAD windows, span post-processing, the fine-tuned model, LoadGen runs."""

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from mlpace.errors import MlpaceError  # noqa: E402
from mlpace.inference import squad  # noqa: E402
from mlpace import cli  # noqa: E402
from mlpace.inference.models import BuildOptions  # noqa: E402
from mlpace.benchmarks.bert import serve as bert  # noqa: E402
from mlpace.inference import squad_features  # noqa: E402
from mlpace.inference.runner import RunOptions, run_test  # noqa: E402
from mlpace.rules import inference as rules  # noqa: E402

pytestmark = pytest.mark.timeout(300)

# A smaller pre-training set (one epoch) and a shorter fine-tune than the defaults. The mini
# WordPiece vocabulary differs from one generation to the next (`tokenizers` breaks ties in
# its trainer in hash order), so the tiny model's F1 does too: 0.39-0.42 over three
# vocabularies with this recipe, 0.17-0.43 with 400 steps.
TINY = {"mini_dupe_factor": 2, "squad_train_articles": 400, "squad_dev_articles": 20, "squad_steps": 600,
        "squad_lr": 2e-3}

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "where", "was", "ada", "born", "in", "paris",
         "?", ".", "later", "lived", "lima"]
CONTEXT = "Ada was born in Paris. Later Ada lived in Lima."
TOKENS = squad_features.Tokenisation(max_seq_length=16, doc_stride=4, max_query_length=8)


@pytest.fixture
def hand_made(tmp_path):
    """One question, a 12-token context cut into two windows of 8 context tokens."""
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tokenizer = squad_features.load_tokenizer(tmp_path / "vocab.txt")
    examples = [{"id": "q1", "question": "Where was Ada born?", "context": CONTEXT,
                 "answers": ["Paris"], "starts": [CONTEXT.index("Paris")]}]
    return examples, squad_features.featurize(examples, tokenizer, TOKENS)


def test_windows_follow_run_squad(hand_made):
    _, features = hand_made
    assert len(features) == 2 and features.input_ids.dtype == np.int32
    first, second = features.input_ids
    # [CLS] where was ada born ? [SEP] | ada was born in paris . later ada | [SEP]
    assert [WORDS[i] for i in first] == ["[CLS]", "where", "was", "ada", "born", "?", "[SEP]", "ada", "was",
                                         "born", "in", "paris", ".", "later", "ada", "[SEP]"]
    assert [WORDS[i] for i in second[7:]] == ["paris", ".", "later", "ada", "lived", "in", "lima", ".", "[SEP]"]
    assert list(features.segment_ids[0]) == [0] * 7 + [1] * 9
    assert features.input_mask.all()
    # the gold span in both windows; context tokens carry their characters
    assert list(features.start) == [11, 7] and list(features.end) == [11, 7]
    assert CONTEXT[features.char_start[0, 11]:features.char_end[0, 11]] == "Paris"
    assert (features.char_start[:, :7] == -1).all() and features.char_start[0, 15] == -1
    # "paris" and "." have most context in the first window, "later" and "ada" in the second
    assert list(features.max_context[0, 11:15]) == [True, True, False, False]
    assert list(features.max_context[1, 7:11]) == [False, False, True, True]


def logits(n=16, start=(), end=()):
    out = np.full((n, 2), -5.0, np.float32)
    for position, value in start:
        out[position, 0] = value
    for position, value in end:
        out[position, 1] = value
    return out


def test_best_valid_span_is_picked_and_mapped_back(hand_made, monkeypatch):
    examples, features = hand_made
    # window 0: the best start is a question token (invalid); "Ada was born in" scores 12,
    # "Paris" 12.5. Window 1: "paris" scores 18 there, but its most context is window 0.
    first = logits(start=[(1, 9.0), (11, 5.0), (7, 4.0)], end=[(10, 8.0), (11, 7.5)])
    second = logits(start=[(7, 9.0), (13, 3.0)], end=[(7, 9.0), (13, 3.0)])
    outputs = {0: first.ravel(), 1: second.ravel()}
    assert squad_features.predictions(examples, features, outputs) == {"q1": "Paris"}
    assert squad_features.f1_of(examples, features, outputs) == 1.0
    # a better span in the other window wins: "Lima" (14 > 12.5)
    second[13] = (7.0, 7.0)
    assert squad_features.predictions(examples, features, outputs) == {"q1": "Lima"}
    assert squad_features.f1_of(examples, features, outputs) == 0.0
    # the end before the start, or a span longer than the limit, is never chosen
    backwards = logits(start=[(11, 9.0)], end=[(8, 9.0), (12, 1.0)])
    assert squad_features.predictions(examples, features, {0: backwards.ravel()}) == {"q1": "Paris."}
    # only the N_BEST best starts and ends are candidates: none valid, an empty answer
    monkeypatch.setattr(squad_features, "N_BEST", 1)
    assert squad_features.predictions(examples, features, {0: first.ravel()}) == {"q1": ""}
    monkeypatch.setattr(squad_features, "N_BEST", 20)
    monkeypatch.setattr(squad_features, "MAX_ANSWER_LENGTH", 2)
    long_span = logits(start=[(7, 9.0)], end=[(11, 9.0), (8, 1.0)])
    assert squad_features.predictions(examples, features, {0: long_span.ravel()}) == {"q1": "Ada was"}


def test_gold_spans_survive_tokenisation_and_mapping_back(tmp_path):
    """Every answer of the generated dev set is recovered exactly from its gold tokens, with
    the mini vocabulary (names split into many pieces) and MLPerf's reference windows alike."""
    from mlpace.benchmarks.bert import data as bert_data
    path = squad.generate(tmp_path / "dev-v1.1.json", articles=30, seed=5)
    examples = squad.read_examples(path)
    texts = [ex["context"] for ex in examples[::4]]
    vocab = bert_data.train_wordpiece(texts, vocab_size=300, folder=tmp_path)   # a poor vocabulary
    tokenizer = squad_features.load_tokenizer(vocab)
    for tokens in (bert.SquadConfig().tokens, bert.REFERENCE_TOKENS, squad_features.Tokenisation(32, 8, 16)):
        features = squad_features.featurize(examples, tokenizer, tokens)
        assert squad_features.f1_of(examples, features, squad_features.gold_outputs(features)) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("squad-data")
    # pre-trains the tiny BERT, fine-tunes its span head and caches both
    bert.build(BuildOptions(data_dir=path, threads=1, train_overrides=TINY, train_epochs=1))
    return path


@pytest.fixture
def task(data_dir):
    return bert.build(BuildOptions(data_dir=data_dir, threads=1, train_overrides=TINY, train_epochs=1))


@pytest.mark.slow   # the `task` fixture pre-trains and fine-tunes BERT-mini: minutes on 2 cores
def test_fine_tuned_model_answers_questions(task, data_dir, monkeypatch):
    assert task.metric == "f1" and task.targets == (0.99, 0.999) and task.loadgen_model == "bert"
    notes = task.notes
    assert notes["questions"] == 80 and task.total == notes["windows"] > 80
    # the span head learns: far above an untrained head, which scores near 0
    assert notes["untrained_head_f1"] < 0.1
    assert notes["quality"] > 0.25
    assert task.reference_score == pytest.approx(notes["quality"])
    out = task.predict([task.load(i) for i in range(3)])
    assert all(o.dtype == np.float32 and o.shape == (64, 2) for o in out)
    # cached: a second build neither pre-trains nor fine-tunes
    monkeypatch.setattr(bert, "fine_tune", lambda *a, **k: pytest.fail("fine-tuned a cached model"))
    again = bert.build(BuildOptions(data_dir=data_dir, threads=1, train_overrides=TINY, train_epochs=1))
    assert again.reference_score == task.reference_score
    names = sorted(p.name for p in (data_dir / "inference-models").glob("bert-*.pt"))
    assert [n.split("-")[1] for n in names] == ["mlm", "squad"]
    meta = json.loads(next((data_dir / "inference-models").glob("bert-squad-*.json")).read_text())
    assert meta["fp32_scores"][str(task.total)] == pytest.approx(task.reference_score)


@pytest.mark.slow   # the `task` fixture pre-trains and fine-tunes BERT-mini: minutes on 2 cores
def test_onnxruntime_matches_torch(task, data_dir):
    onnx_task = bert.build(BuildOptions(data_dir=data_dir, threads=1, backend="onnxruntime",
                                        train_overrides=TINY, train_epochs=1))
    samples = [task.load(i) for i in range(16)]
    np.testing.assert_allclose(np.stack(task.predict(samples)), np.stack(onnx_task.predict(samples)),
                               rtol=1e-3, atol=1e-3)


@pytest.mark.slow   # the `task` fixture pre-trains and fine-tunes BERT-mini: minutes on 2 cores
def test_accuracy_mode_through_loadgen_scores_both_targets(task, tmp_path):
    for fraction, folder in ((0.99, "bert-99"), (0.999, "bert-99.9")):
        options = RunOptions(out=tmp_path, quick=True, system="tiny", target_fraction=fraction)
        record = run_test(task, "Offline", "accuracy", options)
        assert record["benchmark"] == folder and record["result"] == "PASS"
        assert record["accuracy"]["score"] == pytest.approx(task.reference_score, abs=1e-6)
        text = (tmp_path / f"open/mlpace/results/tiny/{folder}/Offline/accuracy/accuracy.txt").read_text()
        headline = json.loads(text.splitlines()[0])                # what accuracy-squad.py prints
        assert list(headline) == ["exact_match", "f1"]
        assert headline["f1"] == pytest.approx(record["accuracy"]["score"] * 100)
        assert re.match(rules.ACCURACY_PATTERNS["F1"], text)       # the official checker reads it


@pytest.mark.slow   # the `task` fixture pre-trains and fine-tunes BERT-mini: minutes on 2 cores
def test_quick_performance_run(task, tmp_path):
    options = RunOptions(out=tmp_path, quick=True, system="tiny", user_settings={"target_qps": 500})
    record = run_test(task, "Offline", "performance", options)
    assert record["error"] is None and record["metric"] == "Samples per second"
    assert float(record["value"]) > 0
    assert (tmp_path / "open/mlpace/results/tiny/bert-99/Offline/performance/run_1/mlperf_log_summary.txt").is_file()


@pytest.mark.slow
def test_cli_single_stream_accuracy_and_onnx_offline(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    weights = next((data_dir / "inference-models").glob("bert-squad-mini-*.pt"))   # the tiny model
    common = ["--quick", "--data-dir", str(data_dir), "--threads", "1", "--out", str(out), "--system", "tiny",
              "--checkpoint", str(weights), *[f"--set={key}={value}" for key, value in TINY.items()]]
    code = cli.main(["infer", "bert", "--scenario", "SingleStream", "--mode", "accuracy",
                    "--accuracy-target", "99.9", *common])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    text = (out / "open/mlpace/results/tiny/bert-99.9/SingleStream/accuracy/accuracy.txt").read_text()
    assert re.match(rules.ACCURACY_PATTERNS["F1"], text)
    code = cli.main(["infer", "bert", "--scenario", "Offline", "--backend", "onnxruntime", *common])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    records = json.loads((out / "mlpace_infer_summary.json").read_text())
    assert [(r["benchmark"], r["scenario"], r["mode"]) for r in records] == [("bert-99", "Offline", "performance")]


def test_reference_scale_errors_are_clear(tmp_path):
    with pytest.raises(MlpaceError, match="needs --checkpoint"):
        bert.build(BuildOptions(scale="reference", data_dir=tmp_path))
    checkpoint = tmp_path / "bert.pt"
    with pytest.raises(MlpaceError, match="dev-v1.1.json"):
        bert.build(BuildOptions(scale="reference", data_dir=tmp_path, checkpoint=checkpoint))
    squad.generate(tmp_path / "dev-v1.1.json", articles=2, seed=1)
    with pytest.raises(MlpaceError, match="vocab.txt"):
        bert.build(BuildOptions(scale="reference", data_dir=tmp_path, checkpoint=checkpoint))
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    with pytest.raises(MlpaceError, match="does not exist"):
        bert.build(BuildOptions(scale="reference", data_dir=tmp_path, checkpoint=checkpoint))
    checkpoint.write_bytes(b"not a state dict")
    with pytest.raises(MlpaceError, match="cannot load a BERT SQuAD model"):
        bert.build(BuildOptions(scale="reference", data_dir=tmp_path, checkpoint=checkpoint))


def test_reference_scale_serves_a_user_checkpoint(tmp_path):
    """A small BERT in the reference layout: sizes read from the state_dict, 384-token windows."""
    from mlpace.benchmarks.bert.model import BertForQuestionAnswering
    from mlpace.inference.task import score_directly
    squad.generate(tmp_path / "squad" / "dev-v1.1.json", articles=3, seed=1)
    (tmp_path / "squad" / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    torch.manual_seed(0)
    model = BertForQuestionAnswering(len(WORDS), hidden=128, layers=1, heads=2, intermediate=64, max_len=512)
    torch.save(model.state_dict(), tmp_path / "bert.pt")
    task = bert.build(BuildOptions(scale="reference", data_dir=tmp_path, checkpoint=tmp_path / "bert.pt"))
    assert task.notes["questions"] == 12 and task.total == 12          # one 384-token window each
    out = task.predict([task.load(0)])[0]
    assert out.shape == (384, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, model(*[torch.from_numpy(a[None].astype(np.int64))
                                           for a in task.load(0)])[0].detach().numpy(), rtol=1e-5, atol=1e-5)
    assert score_directly(task) == pytest.approx(task.reference_score)
