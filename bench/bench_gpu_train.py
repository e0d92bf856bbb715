"""Reference-scale training throughput on one GPU against NVIDIA's own closed v1.0 rate.

Issue 15 §4: ResNet-50 (images/s) and BERT-large phase 2 (sequences/s) through mlpace's own
reference workloads — the same model, optimizer step, bf16 autocast and channels-last layout
that `mlpace train B --scale reference --device cuda` runs — compared with the per-GPU rate of
NVIDIA's published closed result on a DGX A100 (8 GPUs), read from the shipped logs:

    rate = training samples of the epochs it ran / (run_stop - run_start) / 8 GPUs

Both sides include what their timed region includes: NVIDIA's rate counts its evaluations
inside run_start..run_stop (so it is a lower bound of its pure training rate), ours counts
training steps only (so it is an upper bound of a whole run's rate). The ratio is therefore
generous to us by the share of time NVIDIA spent evaluating (a few percent for both).

Data:
- resnet, `step` mode: batches already on the GPU (real shapes: 224x224x3, 1000 classes), so
  the figure is the model's training rate, as NVIDIA's DALI pipeline (GPU decoding) makes its
  own; `loader` mode: the workload's own `train_epoch` over generated JPEGs in ImageNet's
  class-folder layout through mlpace's ImageFolder loader (PIL decoding on CPU workers), to show
  whether the loader is the limit.
- bert: generated shards in MLPerf's HDF5 format (sequence length 512, 76 predictions), read by
  the workload's own reader, trained by its own `train_epoch`.

    python bench/bench_gpu_train.py                       # both, on cuda
    python bench/bench_gpu_train.py --only resnet --steps 60
Prints one JSON object (figures, NVIDIA's rates, ratios, the GPU's name).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
NVIDIA = REPO / "tests" / "data" / "mlperf" / "training_v1.0" / "NVIDIA" / "results"
NVIDIA_GPUS = 8


# --------------------------------------------------------------------------- NVIDIA's rates

def _mllog(path: Path) -> list[dict]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        at = line.find(":::MLLOG ")
        if at >= 0:
            try:
                events.append(json.loads(line[at + 9:]))
            except json.JSONDecodeError:
                pass
    return events


def nvidia_resnet_rate() -> float:
    """Images/s per A100: epochs run x training set size / timed interval / 8 (median of runs)."""
    rates = []
    for log in sorted((NVIDIA / "dgxa100_ngc21.05_mxnet" / "resnet").glob("result_*.txt")):
        ev = _mllog(log)
        start = next(e["time_ms"] for e in ev if e["key"] == "run_start")
        stop = next(e["time_ms"] for e in ev if e["key"] == "run_stop")
        samples = next(e["value"] for e in ev if e["key"] == "train_samples")
        epochs = max(e["metadata"]["epoch_num"] for e in ev if e["key"] == "epoch_stop")
        rates.append(epochs * samples / ((stop - start) / 1000) / NVIDIA_GPUS)
    return statistics.median(rates)


def nvidia_bert_rate() -> float:
    """Sequences/s per A100: training samples at run_stop / timed interval / 8 (median of runs)."""
    rates = []
    for log in sorted((NVIDIA / "dgxa100_ngc21.05_pytorch" / "bert").glob("result_*.txt")):
        ev = _mllog(log)
        start = next(e["time_ms"] for e in ev if e["key"] == "run_start")
        stop = next(e["time_ms"] for e in ev if e["key"] == "run_stop")
        samples = [e["value"] for e in ev if e["key"] == "train_samples"][-1]
        rates.append(samples / ((stop - start) / 1000) / NVIDIA_GPUS)
    return statistics.median(rates)


# --------------------------------------------------------------------------- timing helper

DEVICE = "cuda"
COMPILE = False


def sync() -> None:
    import torch
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def timed_rate(step, items_per_step: int, steps: int, warmup: int) -> dict:
    """Median items/s over `steps` individually timed steps after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    return {"median_step_s": statistics.median(times), "steps": steps,
            "rate_median": items_per_step / statistics.median(times),
            "rate_mean": items_per_step * steps / total}


# --------------------------------------------------------------------------- resnet

def resnet_step_rate(batch: int, steps: int, warmup: int) -> dict:
    """The reference workload's own training step on device-resident batches."""
    import torch
    from mlpace.benchmarks.resnet.model import resnet50
    from mlpace.benchmarks.resnet.workload import make
    from mlpace.harness.workload import RunContext, weight_decay_groups

    w = make("reference", {"batch_size": batch})
    cfg = w.config
    w.ctx = RunContext(device=DEVICE, seed=1)
    w.model = resnet50(cfg.num_classes).to(DEVICE, memory_format=torch.channels_last)
    w.optimizer = torch.optim.SGD(weight_decay_groups(w.model, cfg.weight_decay),
                                  lr=cfg.base_lr, momentum=cfg.momentum)
    w.steps_per_epoch, w.step = 1_281_167 // batch, 0
    w.model.train()
    if COMPILE:   # not what `mlpace train` runs today: measures what torch.compile would add
        w.model = torch.compile(w.model)
    x = torch.randn(batch, 3, 224, 224, device=DEVICE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg.num_classes, (batch,), device=DEVICE)
    return timed_rate(lambda: w._train_step(x, y), batch, steps, warmup)


def resnet_loader_rate(batch: int, steps: int, warmup: int, workers: int) -> dict:
    """The workload's own train_epoch over generated JPEGs in ImageNet layout (CPU decoding)."""
    import numpy as np
    from PIL import Image
    from mlpace.benchmarks.resnet.workload import make
    from mlpace.harness.workload import RunContext

    root = Path(tempfile.mkdtemp(prefix="imagenet-layout-"))
    rng = np.random.default_rng(0)
    classes, per_class = 1000, max(2, math.ceil(batch * (steps + warmup + 1) / 1000))
    for split, n in (("train", per_class), ("val", 1)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):   # ImageNet's typical size: ~400x350 JPEG
                img = rng.integers(0, 255, (350, 400, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i}.JPEG", quality=90)
    w = make("reference", {"batch_size": batch, "data_path": str(root), "num_workers": workers})
    w.prepare_data(root)
    w.setup(RunContext(device=DEVICE, seed=1))
    it = w.train_epoch(0)
    return timed_rate(lambda: next(it), batch, steps, warmup)


# --------------------------------------------------------------------------- bert

def bert_rate(batch: int, steps: int, warmup: int) -> dict:
    import numpy as np
    from mlpace.benchmarks.bert import data as bert_data
    from mlpace.benchmarks.bert.workload import make
    from mlpace.harness.workload import RunContext

    seq, preds, vocab = 512, 76, 30522
    n = batch * (steps + warmup + 1)
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="bert-shards-"))
    rows = {
        "input_ids": rng.integers(1000, vocab, (n, seq), dtype=np.int32),
        "input_mask": np.ones((n, seq), dtype=np.int32),
        "segment_ids": (np.arange(seq)[None, :] >= seq // 2).repeat(n, 0).astype(np.int32),
        "masked_lm_positions": np.sort(rng.choice(np.arange(1, seq), (n, preds)), axis=1).astype(np.int32),
        "masked_lm_ids": rng.integers(1000, vocab, (n, preds), dtype=np.int32),
        "next_sentence_labels": rng.integers(0, 2, (n,), dtype=np.int32),
    }
    for split in ("training", "eval"):
        (root / split).mkdir()
        bert_data.write_shard(root / split / "part-00000.hdf5", rows)
    (root / "vocab.txt").write_text("\n".join(f"t{i}" for i in range(vocab)) + "\n")
    w = make("reference", {"batch_size": batch, "data_path": str(root)})
    w.prepare_data(root)
    w.setup(RunContext(device=DEVICE, seed=1))
    it = w.train_epoch(0)
    return timed_rate(lambda: next(it), batch, steps, warmup)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["resnet", "bert"], default=None)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--resnet-batch", type=int, default=256)
    p.add_argument("--bert-batch", type=int, default=56, help="NVIDIA's per-GPU batch: 448 / 8")
    p.add_argument("--loader-workers", type=int, default=12)
    p.add_argument("--skip-loader", action="store_true")
    p.add_argument("--device", default="cuda", help="cpu only to try the script itself")
    p.add_argument("--compile", action="store_true", help="resnet step mode under torch.compile")
    args = p.parse_args()
    global DEVICE, COMPILE
    DEVICE, COMPILE = args.device, args.compile

    import torch
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device", file=sys.stderr)
        return 2
    out = {"compile": args.compile, "gpu": torch.cuda.get_device_name(0) if DEVICE.startswith("cuda") else "cpu", "torch": torch.__version__,
           "nvidia_reference": "training_v1.0 NVIDIA dgxa100 (8x A100-SXM4-80GB), per GPU"}
    if args.only in (None, "resnet"):
        nv = nvidia_resnet_rate()
        r = resnet_step_rate(args.resnet_batch, args.steps, args.warmup)
        out["resnet"] = {"nvidia_images_per_s_per_gpu": round(nv, 1), "batch": args.resnet_batch,
                         "step": r, "ratio_step": round(r["rate_median"] / nv, 3)}
        if not args.skip_loader:
            l = resnet_loader_rate(args.resnet_batch, max(10, args.steps // 2), 3, args.loader_workers)
            out["resnet"]["loader"] = l
            out["resnet"]["ratio_loader"] = round(l["rate_median"] / nv, 3)
        print(json.dumps(out["resnet"]), flush=True)
    if args.only in (None, "bert"):
        if DEVICE.startswith("cuda"):
            torch.cuda.empty_cache()
        nv = nvidia_bert_rate()
        b = bert_rate(args.bert_batch, args.steps, args.warmup)
        out["bert"] = {"nvidia_sequences_per_s_per_gpu": round(nv, 1), "batch": args.bert_batch,
                       "step": b, "ratio": round(b["rate_median"] / nv, 3),
                       "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
                       if DEVICE.startswith("cuda") else None}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
