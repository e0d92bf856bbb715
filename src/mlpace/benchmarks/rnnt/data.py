"""LibriSpeech's on-disk layout, the transcripts' normalisation, and a generated mini corpus.

Layout (the LibriSpeech tarballs, unpacked; what this reads at both scales):

    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac     16 kHz mono FLAC
    <root>/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt      "<utt id> WORDS ..."

MLPerf trains on train-clean-100 + train-clean-360 + train-other-500 (utterances up to 16.7 s)
and evaluates on dev-clean (2703 utterances). Transcripts are normalised as the reference's
`normalize_transcripts` does for LibriSpeech: lower case, letters, space and apostrophe.

The mini generator speaks random word sequences from a small vocabulary. Every letter is a
phone-like sound: a voiced one is a harmonic series on the speaker's pitch shaped by two
formant resonances (a fixed pair per letter), an unvoiced one a band of noise (fricative-like); phones are
joined with short cross-fades, words with pauses. Speakers differ in pitch, vocal-tract length
(formant scale), speaking rate and loudness; every utterance gets a pitch contour, per-phone
duration jitter, a random spectral tilt and background noise at 15-35 dB SNR. Training and
evaluation speakers are disjoint, as in LibriSpeech.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError

SAMPLE_RATE = 16000
TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
EVAL_SUBSET = "dev-clean"
MINI_VERSION = 2

# Characters the models emit (the reference's `labels`); the blank is the last class.
LABELS = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]

VOCABULARY = ("THE", "A", "CAT", "DOG", "RED", "BLUE", "GREEN", "SMALL", "BIG", "RUNS", "SITS",
              "ON", "MAT", "HOUSE", "TREE", "BIRD", "FISH", "SWIMS", "FLIES", "OVER", "UNDER",
              "WATER", "NEAR", "HOME", "MOON", "SUN", "STAR", "NIGHT", "DAY", "JUMPS", "QUICK",
              "BROWN", "FOX", "LAZY", "OLD", "KING", "WAVES", "IT'S")


@dataclass(frozen=True)
class Utterance:
    path: Path
    text: str            # normalised transcript
    seconds: float


# ----------------------------------------------------------------------------- loader
def normalize_transcript(text: str) -> str:
    """Lower case; letters, apostrophe and single spaces only."""
    text = re.sub(r"[^a-z' ]", " ", text.lower())
    return " ".join(text.split())


def read_transcripts(chapter_dir: Path) -> dict[str, str]:
    """{utterance id: raw transcript} from every *.trans.txt of one chapter folder."""
    out = {}
    for trans in sorted(chapter_dir.glob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if line.strip():
                uid, _, words = line.strip().partition(" ")
                out[uid] = words
    return out


def list_subset(root: Path, subset: str, max_seconds: float | None = None) -> list[Utterance]:
    """The utterances of one subset folder (sorted by id), durations from the FLAC headers."""
    import soundfile as sf

    folder = Path(root) / subset
    utterances = []
    for chapter in sorted(p for p in folder.glob("*/*") if p.is_dir()):
        transcripts = read_transcripts(chapter)
        for flac in sorted(chapter.glob("*.flac")):
            if flac.stem not in transcripts:
                raise MlpaceError(f"{flac} has no line in {chapter}'s .trans.txt")
            try:
                seconds = sf.info(str(flac)).duration
            except RuntimeError as err:
                raise MlpaceError(f"cannot read {flac}: {err}") from None
            if max_seconds is None or seconds <= max_seconds:
                utterances.append(Utterance(flac, normalize_transcript(transcripts[flac.stem]), seconds))
    return utterances


def list_splits(root: Path, max_train_seconds: float | None = None) -> tuple[list[Utterance], list[Utterance]]:
    """(training utterances of the train-* subsets present, dev-clean utterances)."""
    root = Path(root)
    subsets = [s for s in TRAIN_SUBSETS if (root / s).is_dir()]
    if not subsets or not (root / EVAL_SUBSET).is_dir():
        raise MlpaceError(f"no LibriSpeech at {root} (expected {EVAL_SUBSET}/ and at least one of "
                          f"{', '.join(TRAIN_SUBSETS)}/, each <speaker>/<chapter>/*.flac + *.trans.txt)")
    train = [u for s in subsets for u in list_subset(root, s, max_train_seconds)]
    held_out = list_subset(root, EVAL_SUBSET)
    if not train or not held_out:
        raise MlpaceError(f"LibriSpeech at {root} has no utterances in "
                          f"{'the training subsets' if not train else EVAL_SUBSET}")
    return train, held_out


def training_transcripts(root: Path) -> list[str]:
    """The normalised transcripts of every utterance of the training subsets present (no
    duration filter: the reference's SentencePiece model reads all of them), in path order."""
    texts = []
    for subset in TRAIN_SUBSETS:
        for chapter in sorted(p for p in (Path(root) / subset).glob("*/*") if p.is_dir()):
            texts += [normalize_transcript(t) for _, t in sorted(read_transcripts(chapter).items())]
    return texts


def read_audio(path: Path) -> np.ndarray:
    """float32 mono samples at 16 kHz."""
    import soundfile as sf
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as err:
        raise MlpaceError(f"cannot read {path}: {err}") from None
    if rate != SAMPLE_RATE:
        raise MlpaceError(f"{path} is sampled at {rate} Hz; LibriSpeech is {SAMPLE_RATE} Hz")
    return audio.mean(axis=1)


# ----------------------------------------------------------------------------- mini generator
_F1 = (300.0, 550.0, 800.0, 1050.0)
_F2 = (1250.0, 1700.0, 2250.0, 2850.0, 3500.0)
_UNVOICED = "cfhkpqstx"
_NOISE_BANDS = (1800.0, 2500.0, 3200.0, 3900.0, 4600.0, 5300.0, 6000.0, 6700.0, 7400.0)


@functools.lru_cache(maxsize=1)
def phone_table() -> dict[str, tuple[float, float, bool]]:
    """letter -> (F1 Hz, F2 Hz, voiced), the same for every speaker. Voiced letters get a pair of
    formants from a fixed shuffle of a grid; unvoiced ones a band of noise (F1 = its centre)."""
    grid = [(f1, f2) for f1 in _F1 for f2 in _F2]
    order = np.random.default_rng(1234).permutation(len(grid))
    voiced = [c for c in LABELS if c.isalpha() and c not in _UNVOICED]
    table = {c: (*grid[order[i]], True) for i, c in enumerate(voiced)}
    table.update({c: (_NOISE_BANDS[i], 0.0, False) for i, c in enumerate(_UNVOICED)})
    table["'"] = (0.0, 0.0, False)
    return table


def _envelope(freqs: np.ndarray, formants: tuple[float, ...], tilt: float) -> np.ndarray:
    gain = np.zeros_like(freqs)
    for i, f in enumerate(formants):
        bandwidth = 50.0 + 0.04 * f
        gain += (0.8 ** i) / (1.0 + ((freqs - f) / bandwidth) ** 2)
    return gain * (1.0 + freqs / 1000.0) ** (-tilt)


def _phone(letter: str, n: int, speaker: dict, f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f1, f2, voiced = phone_table()[letter]
    scale = speaker["formant_scale"]
    if letter == "'":                      # a glottal stop: short silence
        return np.zeros(n)
    if voiced:
        formants = (f1 * scale, f2 * scale, 3900 * scale)
        phase = 2 * np.pi * np.cumsum(f0[:n]) / SAMPLE_RATE
        harmonics = np.arange(1, int(5000 / f0.max()) + 1)
        gains = _envelope(harmonics * float(f0.mean()), formants, speaker["tilt"])
        wave = (gains[:, None] * np.sin(harmonics[:, None] * phase[None, :])).sum(0)
    else:                                  # noise through one resonance of its own
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        wave = np.fft.irfft(spectrum * _envelope(freqs, (f1 * scale,), 0.0), n)
        wave *= 0.5
    return wave / (np.abs(wave).max() + 1e-9)


def _ramp(n: int, fade: int) -> np.ndarray:
    env = np.ones(n)
    fade = min(fade, n // 2)
    if fade:
        r = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
        env[:fade], env[n - fade:] = r, r[::-1]
    return env


def synthesize(words: list[str], speaker: dict, rng: np.random.Generator) -> np.ndarray:
    """One utterance of `words` (upper case) by `speaker`, float32 in [-1, 1]."""
    sr = SAMPLE_RATE
    pieces = [np.zeros(int(sr * rng.uniform(0.08, 0.2)))]
    n_phones = sum(len(w) for w in words)
    contour = np.linspace(1.1, 0.9, max(n_phones, 2)) * speaker["f0"]      # declination
    k = 0
    for wi, word in enumerate(words):
        for letter in word.lower():
            n = int(sr * 0.085 * speaker["rate"] * rng.uniform(0.85, 1.2))
            f0 = contour[k] * (1 + 0.03 * np.sin(np.linspace(0, rng.uniform(2, 6), n) + rng.uniform(0, 6)))
            wave = _phone(letter, n, speaker, f0, rng) * _ramp(n, int(0.012 * sr))
            pieces.append(wave * rng.uniform(0.7, 1.0))
            k += 1
        if wi < len(words) - 1:
            pieces.append(np.zeros(int(sr * speaker["rate"] * rng.uniform(0.05, 0.14))))
    pieces.append(np.zeros(int(sr * rng.uniform(0.08, 0.2))))
    audio = np.concatenate(pieces)
    signal_power = np.mean(audio ** 2) + 1e-12
    snr_db = rng.uniform(15, 35)
    audio = audio + rng.standard_normal(audio.size) * np.sqrt(signal_power / 10 ** (snr_db / 10))
    audio *= speaker["gain"] / (np.abs(audio).max() + 1e-9)
    return audio.astype(np.float32)


def _speaker(rng: np.random.Generator) -> dict:
    female = rng.random() < 0.5
    return {"f0": rng.uniform(170, 250) if female else rng.uniform(85, 150),
            "formant_scale": rng.uniform(1.0, 1.12) if female else rng.uniform(0.88, 1.0),
            "rate": rng.uniform(0.8, 1.25), "gain": rng.uniform(0.3, 0.9), "tilt": rng.uniform(0.5, 1.5)}


def write_subset(root: Path, subset: str, speakers: list[int], utterances: int,
                 rng: np.random.Generator, words: tuple[int, int] = (2, 5)) -> None:
    """`utterances` utterances spread over `speakers`, one chapter each, in LibriSpeech layout."""
    import soundfile as sf

    per = [utterances // len(speakers) + (i < utterances % len(speakers)) for i in range(len(speakers))]
    for speaker_id, count in zip(speakers, per):
        speaker = _speaker(rng)
        chapter = 100 + speaker_id
        folder = root / subset / str(speaker_id) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for utt in range(count):
            text = [VOCABULARY[i] for i in rng.integers(len(VOCABULARY), size=rng.integers(words[0], words[1] + 1))]
            uid = f"{speaker_id}-{chapter}-{utt:04d}"
            sf.write(str(folder / f"{uid}.flac"), synthesize(text, speaker, rng), SAMPLE_RATE, format="FLAC")
            lines.append(f"{uid} {' '.join(text)}\n")
        (folder / f"{speaker_id}-{chapter}.trans.txt").write_text("".join(lines))


def generate_mini(root: Path, train_utterances: int, eval_utterances: int,
                  train_speakers: int = 40, eval_speakers: int = 8, seed: int = 0) -> None:
    """A deterministic LibriSpeech-layout corpus: train-clean-100/ and dev-clean/."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    write_subset(root, TRAIN_SUBSETS[0], list(range(1, train_speakers + 1)), train_utterances, rng)
    write_subset(root, EVAL_SUBSET, list(range(1001, 1001 + eval_speakers)), eval_utterances, rng)


def tiny_config(scale: str, root: Path) -> dict:
    """`mlpace validate`'s few steps. Mini: one epoch of 180 steps of 4 utterances at the full
    learning rate, because the open rules want an evaluation below WER 1.0 (at least one word
    heard right), which an untrained RNN-T never gives (it emits nothing: WER 1.0); 180 steps
    reach ~0.5, 120 barely 0.93. Reference: the MLPerf-size RNN-T with its SentencePiece
    tokenizer trained on a tiny LibriSpeech-layout corpus (as many pieces as 16 transcripts
    of a 38-word vocabulary hold, not 1023), one global batch in 8 accumulation steps."""
    if scale == "mini":
        return {"train_utterances": 720, "eval_utterances": 16, "batch_size": 4, "warmup_epochs": 0}
    folder = Path(root) / "LibriSpeech"
    generate_mini(folder, train_utterances=16, eval_utterances=2, train_speakers=2, eval_speakers=1, seed=5)
    return {"data_path": str(folder), "sentencepiece_vocab": 40, "batch_size": 16, "eval_batch_size": 2,
            "threads": 1}
