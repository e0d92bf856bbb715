"""Mini models for inference: trained once by the training harness, then cached.

`load_or_train` returns trained weights from `<data root>/inference-models/<key>.pt` when they
exist; otherwise it runs one mini training run through `mlpace.harness` (the same code as
`mlpace train`), saves the trained model's state_dict atomically and returns it. The key holds
a fingerprint of the training config, so a changed recipe trains a new model instead of
reusing a stale one. Beside the weights, `<key>.json` records how training ended and the FP32
scores that accuracy targets are relative to (a property of those weights on that data).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from mlpace.errors import MlpaceError


def models_root(data_dir: Path | None) -> Path:
    from mlpace.harness.datasets import data_root
    return data_root(data_dir) / "inference-models"


def _save_weights(path: Path, state: dict) -> None:
    """torch.save to a temporary file, then rename: an interrupted save leaves no bad cache."""
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def prepared_workload(benchmark: str, scale: str, data_dir: Path | None, overrides: dict | None = None):
    """The training benchmark's workload with its data ready (generated and cached for mini):
    inference serves the same data through the same loader."""
    from mlpace.benchmarks import make_workload
    from mlpace.harness.datasets import data_root

    overrides = dict(overrides or {})
    if scale == "reference":
        if not data_dir:
            raise MlpaceError(f"reference {benchmark} needs --data-dir (the data set in its real format)")
        overrides.setdefault("data_path", str(data_dir))
    workload = make_workload(benchmark, scale, overrides)
    workload.prepare_data(data_root(data_dir))
    return workload


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class ModelCache:
    """Weights and facts of one cached mini model (or of a user checkpoint)."""

    def __init__(self, name: str, benchmark: str, data_dir: Path | None,
                 overrides: dict | None = None, checkpoint: Path | None = None,
                 max_epochs: int | None = None):
        self.benchmark, self.data_dir, self.checkpoint = benchmark, data_dir, checkpoint
        self.overrides, self.max_epochs = dict(overrides or {}), max_epochs
        self.key = f"{name}-{self._fingerprint()}" if not checkpoint else f"{name}-checkpoint"
        root = models_root(data_dir)
        self.weights = Path(checkpoint) if checkpoint else root / f"{self.key}.pt"
        self.meta_path = root / f"{self.key}.json"
        self.meta = {} if checkpoint else _read_meta(self.meta_path)

    def _fingerprint(self) -> str:
        """The training config and the training data's name and version: a new generator
        version (different data, or a different vocabulary) must not reuse old weights."""
        workload = prepared_workload(self.benchmark, "mini", self.data_dir, self.overrides)
        data = getattr(workload, "root", None)
        text = f"{workload.config!r} max_epochs={self.max_epochs} data={Path(data).name if data else ''}"
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def _train(self):
        from mlpace.benchmarks import make_workload
        from mlpace.harness.datasets import data_root
        from mlpace.harness.timed_run import run_once
        from mlpace.harness.workload import RunContext

        workload = make_workload(self.benchmark, "mini", self.overrides)
        outcome = run_once(workload, RunContext(device="cpu", seed=0, data_dir=data_root(self.data_dir)),
                           log_path=None, max_epochs=self.max_epochs)
        model = workload.trained_model()
        if model is None:
            raise MlpaceError(f"the {self.benchmark} workload did not hand back a trained model")
        self.meta["training"] = {"status": outcome.status, "reason": outcome.reason,
                                 "epochs": outcome.epochs, "quality": outcome.quality,
                                 "seconds": round(outcome.seconds, 1)}
        return model

    def load_or_train(self, build: Callable[[], object]):
        """`build()` with trained weights: the checkpoint, else the cache, else trained now."""
        import torch

        model = build()
        if self.weights.exists():
            try:
                state = torch.load(self.weights, map_location="cpu", weights_only=True)
                model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
            except (OSError, RuntimeError, KeyError, ValueError, AttributeError) as err:
                raise MlpaceError(f"cannot load model weights from {self.weights}: {err}") from None
            return model.eval()
        if self.checkpoint:
            raise MlpaceError(f"checkpoint {self.checkpoint} does not exist")
        trained = self._train()
        state = {k: v.detach().cpu().contiguous() for k, v in trained.state_dict().items()}
        _save_weights(self.weights, state)
        self._save_meta()
        model.load_state_dict(state)
        return model.eval()

    def reference_score(self, samples: int, compute: Callable[[], float]) -> float:
        """The FP32 model's own score on the first `samples` samples (cached with the weights)."""
        scores = self.meta.setdefault("fp32_scores", {})
        if str(samples) not in scores:
            scores[str(samples)] = float(compute())
            if not self.checkpoint:
                self._save_meta()
        return float(scores[str(samples)])

    def _save_meta(self) -> None:
        from mlpace.io import write_atomic
        write_atomic(self.meta_path, json.dumps(self.meta, indent=2) + "\n")


def with_reference_score(task, cache: ModelCache, fp32_predict):
    """Set `task.reference_score`: the eager FP32 model's own score on the task's samples."""
    from dataclasses import replace

    from mlpace.inference.task import score_directly
    fp32 = replace(task, predict=fp32_predict)
    task.reference_score = cache.reference_score(task.total, lambda: score_directly(fp32))
    return task


def serve_bundle(options, cache: ModelCache, bundle, **task_fields):
    """An InferenceTask serving `bundle` on the chosen backend, with its accuracy target
    relative to the same model run eagerly in FP32 (`task_fields`: the InferenceTask fields
    other than predict, reference_score and notes)."""
    from mlpace.inference.backends import make_predict
    from mlpace.inference.task import InferenceTask

    load, total = task_fields["load"], task_fields["total"]
    example = [load(i) for i in range(min(2, total))]   # the ONNX export traces these
    task = InferenceTask(predict=make_predict(bundle, options.backend, options.device, options.precision,
                                              options.threads, example),
                         reference_score=0.0, notes=cache.meta.get("training", {}), **task_fields)
    return with_reference_score(task, cache, make_predict(bundle, "torch", options.device))
