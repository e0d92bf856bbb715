"""SUT backends: the same torch model run by PyTorch (eager or `torch.compile`) or ONNX Runtime.

A benchmark binding gives a `ModelBundle`: the torch module, `collate` (samples -> the
model's input arrays) and `postprocess` (the model's outputs as numpy, and the samples ->
one array per sample). `make_predict` turns it into the `predict(samples) -> [array]` function the SUT calls.
On CUDA the torch backend runs in bf16 or fp16 autocast when asked; on CPU in fp32.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from mlpace.errors import MlpaceError

BACKENDS = ["torch", "torch-compile", "onnxruntime"]
PRECISIONS = ["fp32", "bf16", "fp16"]


@dataclass
class ModelBundle:
    model: object                                          # torch.nn.Module
    collate: Callable[[Sequence[object]], tuple]           # samples -> tuple of numpy arrays
    postprocess: Callable[[tuple, Sequence[object]], list]  # (numpy outputs, samples) -> per-sample arrays
    input_names: tuple = ("input",)


def _torch_predict(bundle: ModelBundle, device: str, precision: str, compile_model: bool):
    import torch

    model = bundle.model.eval().to(device)
    if compile_model:
        model = torch.compile(model, dynamic=True)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if autocast_dtype is not None and not device.startswith("cuda"):
        raise MlpaceError(f"--precision {precision} needs a CUDA device; use fp32 on CPU")
    # torch.set_num_threads sets OpenMP's thread count for the calling thread only: a SUT
    # worker thread would run the model on OpenMP's default (every core), not on the threads
    # asked for; so each thread that predicts sets it once, to what the building thread has.
    threads, configured = torch.get_num_threads(), threading.local()

    def predict(samples):
        if not getattr(configured, "threads", False):
            torch.set_num_threads(threads)
            configured.threads = True
        inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in bundle.collate(samples)]
        with torch.inference_mode():
            if autocast_dtype is not None:
                with torch.autocast(device_type="cuda", dtype=autocast_dtype):
                    out = model(*inputs)
            else:
                out = model(*inputs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return bundle.postprocess(tuple(o.float().cpu().numpy() for o in outs), samples)
    return predict


def export_onnx(bundle: ModelBundle, example_samples: Sequence[object]) -> bytes:
    """The model as ONNX bytes, with a dynamic batch dimension on every input and output."""
    import torch

    example = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in bundle.collate(example_samples))
    model = bundle.model.eval().cpu()
    with torch.inference_mode():
        outs = model(*example)
    n_out = len(outs) if isinstance(outs, (tuple, list)) else 1
    output_names = [f"output_{i}" for i in range(n_out)]
    axes = {name: {0: "batch"} for name in (*bundle.input_names, *output_names)}
    buffer = io.BytesIO()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, example, buffer, dynamo=False, input_names=list(bundle.input_names),
                          output_names=output_names, dynamic_axes=axes, opset_version=17)
    return buffer.getvalue()


def _onnx_predict(bundle: ModelBundle, example_samples, threads: int, device: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(export_onnx(bundle, example_samples), options, providers=providers)

    def predict(samples):
        feeds = dict(zip(bundle.input_names, (np.ascontiguousarray(a) for a in bundle.collate(samples))))
        return bundle.postprocess(tuple(session.run(None, feeds)), samples)
    return predict


def make_predict(bundle: ModelBundle, backend: str = "torch", device: str = "cpu",
                 precision: str = "fp32", threads: int = 1, example_samples=None):
    """The SUT's predict function for `backend` (one of BACKENDS)."""
    if backend not in BACKENDS:
        raise MlpaceError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise MlpaceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise MlpaceError("--device cuda asked for, but torch sees no CUDA GPU")
    if backend == "onnxruntime":
        if precision != "fp32":
            raise MlpaceError("the onnxruntime backend runs the exported fp32 model; use --precision fp32")
        if example_samples is None:
            raise MlpaceError("the onnxruntime backend needs example samples to export the model")
        return _onnx_predict(bundle, example_samples, threads, device)
    return _torch_predict(bundle, device, precision, compile_model=backend == "torch-compile")
