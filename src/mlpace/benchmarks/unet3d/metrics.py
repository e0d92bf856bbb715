"""DICE, the Dice + cross-entropy loss and sliding-window inference, as the MLPerf reference
computes them (image_segmentation/pytorch: model/losses.py and runtime/inference.py).

The MLPerf reference implements these in plain torch rather than through MONAI, and the
quality target is defined by its exact definitions (smoothing 1e-6, background excluded,
Gaussian-weighted windows with overlap 0.5, remainder cropping), so they are reproduced here.

    DICE of a class = (2 |P ∩ G| + 1e-6) / (|P| + |G| + 1e-6)   per case, then averaged over cases
    mean DICE       = mean of the kidney (label 1) and tumour (label 2) DICE
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

SMOOTH = 1e-6


def dice_per_class(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DICE of every non-background class: prediction N×C×D×H×W (probabilities or one-hot),
    target N×D×H×W integer labels. Returns N×(C-1)."""
    classes = prediction.shape[1]
    onehot = F.one_hot(target.long(), classes).movedim(-1, 1).to(prediction.dtype)
    prediction, onehot = prediction[:, 1:], onehot[:, 1:]
    axes = tuple(range(2, prediction.ndim))
    intersection = (prediction * onehot).sum(axes)
    return (2 * intersection + SMOOTH) / (prediction.sum(axes) + onehot.sum(axes) + SMOOTH)


def dice_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Evaluation DICE (argmax prediction, one-hot): N×(C-1)."""
    classes = logits.shape[1]
    hard = F.one_hot(logits.argmax(1), classes).movedim(-1, 1).float()
    return dice_per_class(hard, target)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference training loss: (1 - mean soft DICE + cross-entropy) / 2."""
    dice = dice_per_class(torch.softmax(logits.float(), 1), target).mean()
    return (1 - dice + F.cross_entropy(logits.float(), target.long())) / 2


def gaussian_kernel(n: int, std: float) -> torch.Tensor:
    """The reference's window weight: cube root of a 3D Gaussian, peak 1."""
    g = torch.exp(-0.5 * ((torch.arange(n, dtype=torch.float64) - (n - 1) / 2) / std) ** 2)
    g3 = (g[:, None, None] * g[None, :, None] * g[None, None, :]) ** (1 / 3)
    return (g3 / g3.max()).float()


def sliding_window_inference(model, image: torch.Tensor, label: torch.Tensor, roi: int,
                             overlap: float = 0.5, pad_value: float = -2.2, batch_size: int = 8,
                             autocast=None):
    """Logits of a whole volume (1×1×D×H×W) from Gaussian-weighted windows of size `roi`,
    and the label cropped the same way (the reference crops small remainders off the volume)."""
    stride = int(roi * (1 - overlap))
    shape = list(image.shape[2:])
    crops = []
    for n in shape:
        rest = n % stride
        rest = rest if rest < stride // 2 else 0
        crops.append((rest // 2, n - (rest - rest // 2)))
    index = (...,) + tuple(slice(a, b) for a, b in crops)
    image, label = image[index], label[index]
    shape = list(image.shape[2:])
    pad = []   # up to a multiple of the stride, and at least one window (the reference's pad_input)
    for n in reversed(shape):
        total = (stride - n % stride) % stride
        total += stride if n + total < roi else 0
        pad += [total // 2, total - total // 2]
    image = F.pad(image, pad, value=pad_value)
    padded = image.shape[2:]
    weight = gaussian_kernel(roi, 0.125 * roi).to(image.device)
    corners = [(i, j, k) for i in range(0, padded[0] - roi + 1, stride)
               for j in range(0, padded[1] - roi + 1, stride)
               for k in range(0, padded[2] - roi + 1, stride)]
    result, norm = None, torch.zeros(padded, device=image.device)
    for b in range(0, len(corners), batch_size):
        chunk = corners[b:b + batch_size]
        windows = torch.cat([image[..., i:i + roi, j:j + roi, k:k + roi] for i, j, k in chunk])
        with autocast() if autocast else contextlib.nullcontext():
            out = model(windows).float()
        if result is None:
            result = torch.zeros((1, out.shape[1], *padded), device=image.device)
        for (i, j, k), o in zip(chunk, out):
            result[0, :, i:i + roi, j:j + roi, k:k + roi] += o * weight
            norm[i:i + roi, j:j + roi, k:k + roi] += weight
    result = result / norm
    lo = [pad[2 * (2 - a)] for a in range(3)]   # pad lists the last axis first
    return result[..., lo[0]:lo[0] + shape[0], lo[1]:lo[1] + shape[1], lo[2]:lo[2] + shape[2]], label
