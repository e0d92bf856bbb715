"""Speech recognition: RNN-T on LibriSpeech (reference) and a mini RNN-T on generated speech-like audio."""

SCALES = ("mini", "reference")


def make_workload(scale: str, overrides: dict):
    from mlpace.benchmarks.rnnt.workload import make
    return make(scale, overrides)
