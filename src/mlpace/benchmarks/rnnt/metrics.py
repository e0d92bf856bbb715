"""Text <-> class ids, and word error rate (jiwer, as the MLPerf reference scores it)."""

from __future__ import annotations

from mlpace.benchmarks.rnnt.data import LABELS


class CharTokenizer:
    """The reference's character labels (space, a-z, apostrophe); the blank is one past them."""

    def __init__(self, labels: list[str] = LABELS):
        self.labels = list(labels)
        self.index = {c: i for i, c in enumerate(self.labels)}

    @property
    def n_classes(self) -> int:
        return len(self.labels) + 1

    def encode(self, text: str) -> list[int]:
        return [self.index[c] for c in text if c in self.index]

    def decode(self, ids) -> str:
        return "".join(self.labels[i] for i in ids if 0 <= i < len(self.labels))


class SentencePieceTokenizer:
    """The reference's 1023-piece LibriSpeech SentencePiece model (blank = 1023)."""

    def __init__(self, path: str):
        from mlpace.errors import MlpaceError
        try:
            import sentencepiece as spm
        except ImportError:
            raise MlpaceError("the reference rnnt tokenizer needs the sentencepiece package "
                              "(pip install sentencepiece)") from None
        try:
            self.sp = spm.SentencePieceProcessor(model_file=path)
        except (OSError, RuntimeError) as err:
            raise MlpaceError(f"cannot load SentencePiece model {path}: {err}") from None

    @property
    def n_classes(self) -> int:
        return self.sp.get_piece_size() + 1

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids if 0 <= i < self.sp.get_piece_size()])


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: (substitutions + deletions + insertions) / reference words, over all pairs."""
    import jiwer
    # jiwer rejects empty reference strings; an empty hypothesis is all deletions.
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))
