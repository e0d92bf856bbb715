"""Text <-> class ids, and word error rate (jiwer, as the MLPerf reference scores it)."""

from __future__ import annotations

from pathlib import Path

from mlpace.benchmarks.rnnt.data import LABELS
from mlpace.errors import MlpaceError


def _sentencepiece():
    """The sentencepiece package, imported only where the reference tokenizer is used."""
    try:
        import sentencepiece
    except ImportError:
        raise MlpaceError("the reference rnnt tokenizer needs the sentencepiece package "
                          "(pip install sentencepiece, or mlpace's [ml] extra)") from None
    return sentencepiece


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
        spm = _sentencepiece()
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as err:
            raise MlpaceError(f"cannot load SentencePiece model {path}: {err}") from None

    @property
    def n_classes(self) -> int:
        return self.sp.get_piece_size() + 1

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids if 0 <= i < self.sp.get_piece_size()])


def train_sentencepieces(texts: list[str], out_dir: Path, vocab_size: int) -> Path:
    """The reference's tokenizer recipe (scripts/create_sentencepieces.sh): a unigram
    SentencePiece model of `vocab_size` pieces (<unk> included, no BOS/EOS), full character
    coverage, trained on the training transcripts; written as librispeech<vocab_size>.model."""
    spm = _sentencepiece()
    out_dir = Path(out_dir)
    corpus = out_dir / "transcripts.txt"
    corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    prefix = out_dir / f"librispeech{vocab_size}"
    try:
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size,
                                       character_coverage=1.0, bos_id=-1, eos_id=-1, model_type="unigram",
                                       minloglevel=2)
    except RuntimeError as err:      # e.g. too few distinct pieces in the transcripts for vocab_size
        reason = str(err).strip().splitlines()[-1].rsplit("] ", 1)[-1]
        raise MlpaceError(f"cannot train the SentencePiece tokenizer on {len(texts)} transcripts: {reason} "
                          "(see sentencepiece_vocab)") from None
    corpus.unlink()
    return prefix.with_suffix(".model")


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: (substitutions + deletions + insertions) / reference words, over all pairs."""
    import jiwer
    # jiwer rejects empty reference strings; an empty hypothesis is all deletions.
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        return 0.0
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))
