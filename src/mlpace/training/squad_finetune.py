"""Fine-tuning BERT-mini's span head on SQuAD features, for the inference benchmark bert.

It lives in the training layer because inference serves models and never trains them: the
inference binding (`mlpace.benchmarks.bert.serve`) builds the features and caches the weights,
this module holds the loop. `config` is the binding's `SquadConfig` (the `squad_*` fields).
"""

from __future__ import annotations

import time

import numpy as np


def fine_tune(model, train, config, log=None) -> dict:
    """Train the span head and the encoder on `train`: AdamW, linear warm-up and decay, the mean
    of the start and end cross-entropies (run_squad.py's loss). Returns what happened."""
    import torch

    from mlpace.harness.workload import weight_decay_groups
    torch.manual_seed(config.squad_seed)
    generator = torch.Generator().manual_seed(config.squad_seed)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, config.squad_weight_decay), lr=config.squad_lr)
    warmup = max(1, int(config.squad_warmup * config.squad_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, max(0.0, (config.squad_steps - step) / max(1, config.squad_steps - warmup))))
    tensors = [torch.from_numpy(a.astype(np.int64)) for a in
               (train.input_ids, train.input_mask, train.segment_ids, train.start, train.end)]
    threads = torch.get_num_threads()
    # One thread: the mini model is too small to gain from more, and the weights (so the
    # cached model and its F1) then do not depend on the serving run's --threads.
    torch.set_num_threads(1)
    try:
        return _fine_tune_steps(model, tensors, optimizer, schedule, generator, config, log)
    finally:
        torch.set_num_threads(threads)


def _fine_tune_steps(model, tensors, optimizer, schedule, generator, config, log) -> dict:
    import torch
    import torch.nn.functional as F

    model.train()
    n = len(tensors[0])
    cpu, order, at, losses = time.process_time(), torch.randperm(n, generator=generator), 0, []
    for step in range(config.squad_steps):
        if at + config.squad_batch_size > len(order):
            order, at = torch.randperm(n, generator=generator), 0
        idx = order[at:at + config.squad_batch_size]
        at += config.squad_batch_size
        ids, mask, segments, start, end = (t[idx] for t in tensors)
        logits = model(ids, mask, segments)
        loss = (F.cross_entropy(logits[..., 0], start) + F.cross_entropy(logits[..., 1], end)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if log and (step + 1) % 200 == 0:
            log(f"fine-tune step {step + 1}/{config.squad_steps}: loss {np.mean(losses[-200:]):.3f}")
    model.eval()
    return {"steps": config.squad_steps, "cpu_seconds": round(time.process_time() - cpu, 1),
            "final_loss": round(float(np.mean(losses[-50:])), 4)}
