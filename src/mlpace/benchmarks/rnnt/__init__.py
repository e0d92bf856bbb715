"""Speech recognition: RNN-T on LibriSpeech (reference) and a mini RNN-T on generated speech-like audio."""

SCALES = ("mini", "reference")
