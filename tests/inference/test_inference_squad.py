"""The SQuAD v1.1 pieces of the bert benchmark: generated files in the real format, the metric."""

import json

import pytest

from mlpace.errors import MlpaceError
from mlpace.inference import squad


def test_generated_file_is_squad_v1_1_with_answers_as_context_spans(tmp_path):
    path = squad.generate(tmp_path / "dev-v1.1.json", articles=20, seed=3)
    raw = json.loads(path.read_text())
    assert raw["version"] == "1.1" and len(raw["data"]) == 20
    examples = squad.read_examples(path)
    assert len(examples) == 80 and len({e["id"] for e in examples}) == 80
    for e in examples:
        start, text = e["starts"][0], e["answers"][0]
        assert e["context"][start:start + len(text)] == text
    assert squad.generate(tmp_path / "again.json", 20, 3).read_text() == path.read_text()  # deterministic


def test_metric_follows_the_official_script():
    assert squad.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert squad.f1_score("a pilot", "pilot") == 1.0                     # articles do not count
    assert squad.f1_score("born in Paris", "Paris") == pytest.approx(0.5)
    assert squad.exact_match("Paris.", "paris") == 1.0
    examples = [{"id": "1", "answers": ["Paris", "Paris France"]}, {"id": "2", "answers": ["1901"]}]
    result = squad.evaluate(examples, {"1": "Paris France", "2": "1902"})
    assert result == {"exact_match": 50.0, "f1": 50.0}
    assert squad.evaluate(examples, {})["f1"] == 0.0                     # missing answers score 0


def test_unreadable_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "dev.json"
    bad.write_text("{not json")
    with pytest.raises(MlpaceError, match="not a SQuAD v1.1 JSON file"):
        squad.read_examples(bad)
