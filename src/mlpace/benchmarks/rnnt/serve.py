"""rnnt: speech recognition on LibriSpeech dev-clean, word error rate, 99 % of FP32 (1 - WER).

A sample is one utterance's features (normalised log-mel frames, stacked as the training
benchmark stacks them: float32, frames x features). The SUT decodes greedily (the training
evaluation's decoder, up to 30 symbols a frame and 300 an utterance) and answers with the
token ids behind a length prefix: int32 [n, id_1 ... id_n], so an empty transcript is still a
non-empty answer. The accuracy script turns ids back into text and scores the corpus WER with
jiwer, as the training evaluation does.
mini: the training benchmark's mini RNN-T (trained once, cached) on its generated dev-clean
utterances; reference: a user checkpoint (this RNN-T's state_dict) on real LibriSpeech.
"""

from __future__ import annotations

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask

TRAINING_BENCHMARK = "rnnt"
TORCH_ONLY = "greedy decoding loops over frames"


def encode_answer(ids: list[int]) -> np.ndarray:
    return np.array([len(ids), *ids], dtype=np.int32)


def decode_answer(answer: np.ndarray) -> list[int] | None:
    """The ids of a length-prefixed answer; None when it is malformed."""
    answer = np.asarray(answer).ravel()
    if answer.size == 0 or answer[0] < 0 or answer[0] != answer.size - 1:
        return None
    return [int(i) for i in answer[1:]]


def _decoder(model, config, device: str, precision: str):
    """predict(samples) for feature matrices: padded batch -> greedy ids, length-prefixed."""
    import torch

    from mlpace.benchmarks.rnnt.workload import pad

    if precision != "fp32" and not device.startswith("cuda"):
        raise MlpaceError(f"--precision {precision} needs a CUDA device; use fp32 on CPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def predict(samples):
        x, lens = pad([torch.from_numpy(np.asarray(s, dtype=np.float32)) for s in samples])
        with torch.inference_mode():
            if dtype is None:
                hyps = model.greedy_decode(x.to(device), lens.to(device), config.max_symbols_per_step,
                                           config.max_symbols)
            else:
                with torch.autocast(device_type="cuda", dtype=dtype):
                    hyps = model.greedy_decode(x.to(device), lens.to(device), config.max_symbols_per_step,
                                               config.max_symbols)
        return [encode_answer(h) for h in hyps]
    return predict


def _wer(texts: list[str], tokenizer):
    def score(outputs: dict[int, np.ndarray]) -> float:
        from mlpace.benchmarks.rnnt.metrics import word_error_rate
        refs, hyps = [], []
        for index, answer in sorted(outputs.items()):
            ids = decode_answer(answer)
            refs.append(texts[index])
            hyps.append(tokenizer.decode(ids) if ids is not None else "")   # malformed: all deleted
        return word_error_rate(refs, hyps) if refs else 1.0
    return score


def build(options: BuildOptions) -> InferenceTask:
    from mlpace.inference.task import model_and_data, serve_predict, served_count

    workload, cache = model_and_data(options, "rnnt", TRAINING_BENCHMARK, "an RNN-T state_dict",
                                     torch_only=TORCH_ONLY)
    # The training benchmark's tokenizer and dev-clean features, computed as its evaluation does.
    workload.load_evaluation()
    config = workload.config
    model = cache.load_or_train(workload.build_model).to(options.device)
    features = [f.numpy() for f in workload.eval_features]
    return serve_predict(
        cache, _decoder(model, config, options.device, options.precision),
        _decoder(model, config, options.device, "fp32"),
        name="rnnt", total=served_count(options, len(features)), load=features.__getitem__,
        output_dtype="int32", score=_wer(workload.eval_texts, workload.tokenizer), metric="WER",
        direction="min", max_batch=config.eval_batch_size)
