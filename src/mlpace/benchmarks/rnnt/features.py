"""Log-mel filterbank features, frame splicing, speed perturbation and SpecAugment in plain torch.

The reference's `FilterbankFeatures` (common/data/features.py): dither, pre-emphasis 0.97,
a centred STFT (512-point FFT, 20 ms Hann window, 10 ms hop), power spectrum, a triangular mel
filterbank (80 filters, 0 Hz to Nyquist), natural log with a 2^-24 floor, then per-feature
normalisation over the utterance. Frame splicing stacks `stack` consecutive frames and keeps
every `stack`-th (reference: 3 and 3, so 30 ms input frames of 240 features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LOG_FLOOR = 2.0 ** -24


@dataclass(frozen=True)
class FeatureSpec:
    sample_rate: int = 16000
    n_fft: int = 512
    window_s: float = 0.02
    hop_s: float = 0.01
    n_mels: int = 80
    preemph: float = 0.97
    dither: float = 1e-5
    stack: int = 3                # frame stacking = subsampling


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced on the HTK mel scale, each
    peaking at 1 at its centre frequency (which `mel_centres` returns)."""
    fmax = fmax or sample_rate / 2
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0, None)).float()


def mel_centres(n_mels: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    fmax = fmax or sample_rate / 2
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))[1:-1]


class LogMel:
    """audio (N,) float tensor -> normalised log-mel features (frames, n_mels)."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.win = int(round(spec.window_s * spec.sample_rate))
        self.hop = int(round(spec.hop_s * spec.sample_rate))
        self.window = torch.hann_window(self.win, periodic=False)
        self.fbank = mel_filterbank(spec.n_mels, spec.n_fft, spec.sample_rate)

    def power_mel(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        s = self.spec
        x = audio.float()
        if s.dither:
            x = x + s.dither * torch.randn(x.shape, generator=generator)
        if s.preemph:
            x = torch.cat([x[:1], x[1:] - s.preemph * x[:-1]])
        stft = torch.stft(x, s.n_fft, hop_length=self.hop, win_length=self.win, window=self.window,
                          center=True, pad_mode="constant", return_complex=True)
        power = stft.real ** 2 + stft.imag ** 2                      # (freqs, frames)
        return (self.fbank @ power).T                                 # (frames, n_mels)

    def __call__(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logmel = torch.log(self.power_mel(audio, generator) + LOG_FLOOR)
        mean = logmel.mean(0, keepdim=True)
        std = logmel.std(0, keepdim=True) if logmel.shape[0] > 1 else torch.ones_like(mean)
        return (logmel - mean) / (std + 1e-5)


def splice(features: torch.Tensor, stack: int) -> torch.Tensor:
    """(frames, F) -> (ceil(frames / stack), F * stack): stack consecutive frames, keep every
    `stack`-th (zero padding at the end), as the reference's frame splicing does."""
    if stack == 1:
        return features
    frames, n = features.shape
    pad = (-frames) % stack
    x = torch.cat([features, features.new_zeros(pad, n)]) if pad else features
    return x.reshape(-1, stack * n)


def speed_perturb(audio: torch.Tensor, rate: float) -> torch.Tensor:
    """Resample so that the utterance plays `rate` times faster (tempo and pitch, like sox speed)."""
    if rate == 1.0:
        return audio
    n = max(2, int(round(audio.numel() / rate)))
    return torch.nn.functional.interpolate(audio[None, None], size=n, mode="linear",
                                           align_corners=True)[0, 0]


def spec_augment(x: torch.Tensor, freq_masks: int, max_freq: int, time_masks: int, max_time: float,
                 rng: np.random.Generator, min_freq: int = 0, min_time: int = 0) -> torch.Tensor:
    """SpecAugment on (frames, n_mels) features: `freq_masks` bands of [min_freq, max_freq] mel
    bins and `time_masks` spans of [min_time, max_time x frames] frames, set to zero."""
    x = x.clone()
    frames, n_mels = x.shape
    for _ in range(freq_masks):
        width = int(rng.integers(min_freq, max_freq + 1))
        start = int(rng.integers(0, max(1, n_mels - width + 1)))
        x[:, start:start + width] = 0
    longest = max(min_time, int(math.floor(max_time * frames))) if max_time < 1 else int(max_time)
    for _ in range(time_masks):
        width = int(rng.integers(min_time, longest + 1))
        start = int(rng.integers(0, max(1, frames - width + 1)))
        x[start:start + width] = 0
    return x
