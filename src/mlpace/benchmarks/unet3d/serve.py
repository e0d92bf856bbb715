"""3d-unet: kidney and tumour segmentation of KiTS19 volumes, mean DICE (the KiTS19 benchmark
of MLPerf Inference v2.1+, with v1.1's 99 % and 99.9 % targets).

A sample is one whole preprocessed volume; the SUT runs the training benchmark's
sliding-window inference over it (Gaussian-weighted 50 %-overlap windows) and answers with
the predicted label of every voxel (uint8). The accuracy script is the training evaluation's
DICE: per case, kidney and tumour, averaged over cases and then over the two classes.
mini: the training benchmark's mini 3D U-Net (trained once, cached) on its generated KiTS19-
layout evaluation cases; reference: a user checkpoint on real KiTS19.
"""

from __future__ import annotations

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask

TRAINING_BENCHMARK = "unet3d"
TORCH_ONLY = "sliding-window inference"


def _segmenter(model, config, device: str, pad_value: float, precision: str):
    """predict(samples) for volumes: sliding-window logits -> argmax labels, one volume at a time."""
    import torch

    from mlpace.benchmarks.unet3d.metrics import sliding_window_inference

    autocast = None
    if precision != "fp32":
        if not device.startswith("cuda"):
            raise MlpaceError(f"--precision {precision} needs a CUDA device; use fp32 on CPU")
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast = lambda: torch.autocast(device_type="cuda", dtype=dtype)  # noqa: E731

    def predict(samples):
        outputs = []
        for volume in samples:
            image = torch.from_numpy(volume)[None, None].to(device)
            dummy = torch.zeros(volume.shape, dtype=torch.uint8, device=device)[None]
            with torch.inference_mode():
                logits, _ = sliding_window_inference(model, image, dummy, config.roi_size, config.overlap,
                                                     pad_value, config.eval_batch_size, autocast=autocast)
            outputs.append(logits.argmax(1)[0].to(torch.uint8).cpu().numpy().ravel())
        return outputs
    return predict


def _dice(volumes, labels, config, pad_value: float):
    """The accuracy script: labels cropped as the inference crops them, then mean DICE."""
    import torch

    from mlpace.benchmarks.unet3d.metrics import dice_per_class, sliding_window_inference

    def crop_like_inference(volume, label):
        # The sliding window drops small remainders at the borders; crop the label the same way.
        blank = lambda w: torch.zeros((w.shape[0], 3, *w.shape[2:]))  # noqa: E731
        _, cropped = sliding_window_inference(blank, torch.from_numpy(volume)[None, None],
                                              torch.from_numpy(label)[None], config.roi_size,
                                              config.overlap, pad_value, 64)
        return cropped[0]

    def score(outputs: dict[int, np.ndarray]) -> float:
        per_case = []
        for index, flat in outputs.items():
            target = crop_like_inference(volumes[index], labels[index])
            if flat.size != target.numel():
                per_case.append(torch.zeros(2))   # an empty or malformed answer scores 0
                continue
            prediction = torch.from_numpy(flat.astype(np.int64).reshape(target.shape))
            onehot = torch.nn.functional.one_hot(prediction, 3).movedim(-1, 0)[None].float()
            per_case.append(dice_per_class(onehot, target[None])[0])
        return float(torch.stack(per_case).mean(0).mean()) if per_case else 0.0
    return score


def build(options: BuildOptions) -> InferenceTask:
    import torch

    from mlpace.benchmarks.unet3d import data as kits
    from mlpace.benchmarks.unet3d.model import UNet3D
    from mlpace.inference.task import model_and_data, serve_predict, served_count

    workload, cache = model_and_data(options, "3d-unet", TRAINING_BENCHMARK, "a 3D U-Net state_dict",
                                     torch_only=TORCH_ONLY)
    config = workload.config
    model = cache.load_or_train(lambda: UNet3D(1, 3, config.filters)).to(options.device)
    if options.backend == "torch-compile":
        model = torch.compile(model, dynamic=True)
    _, eval_cases = kits.list_cases(workload.root)
    cases = kits.load_split(eval_cases, (config.roi_size,) * 3)
    volumes, labels = [x for x, _ in cases], [y for _, y in cases]
    pad_value = (kits.CLIP_HU[0] - kits.MEAN_HU) / kits.STD_HU
    return serve_predict(
        cache, _segmenter(model, config, options.device, pad_value, options.precision),
        _segmenter(model, config, options.device, pad_value, "fp32"),
        name="3d-unet", total=served_count(options, len(cases)), load=volumes.__getitem__,
        output_dtype="uint8", score=_dice(volumes, labels, config, pad_value), metric="DICE",
        max_batch=1)
