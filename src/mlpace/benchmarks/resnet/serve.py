"""resnet50: image classification, top-1 accuracy, 99 % of FP32 (MLPerf Inference v1.1).

mini: the training benchmark's ResNet-mini, trained once by the harness and cached, served on
the generated shapes data set's `val` split (class folders of JPEGs, the training loader).
reference: ResNet-50 v1.5 from a user checkpoint (state_dict) on ImageNet's `val` folder with
the standard resize-256/centre-crop-224 preprocessing.
"""

from __future__ import annotations

import numpy as np

from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask

TRAINING_BENCHMARK = "resnet"
MINI_MODEL_VERSION = 1


def _top1(labels: np.ndarray):
    def score(outputs: dict[int, np.ndarray]) -> float:
        hits = [int(out[0]) == int(labels[i]) for i, out in outputs.items() if out.size]
        return float(sum(hits)) / max(len(outputs), 1)
    return score


def _bundle(model):
    from mlpace.inference.backends import ModelBundle
    return ModelBundle(model=model, collate=lambda samples: (np.stack(samples),),
                       postprocess=lambda outs, _: [np.array([c], np.int32) for c in outs[0].argmax(1)])


def build(options: BuildOptions) -> InferenceTask:
    from mlpace.benchmarks.resnet import data as image_data
    from mlpace.benchmarks.resnet.model import resnet50, resnet_mini
    from mlpace.inference.task import model_and_data, serve_bundle, served_count

    workload, cache = model_and_data(options, "resnet50", TRAINING_BENCHMARK, "a ResNet-50 v1.5 state_dict")
    if options.scale == "mini":
        images, labels, classes = image_data.load_into_memory(workload.root, "val")
        # The training code's own evaluation preprocessing, done once at load time.
        inputs = workload.normalise(images).numpy()
        labels = labels.numpy()
        config = workload.config
        model = cache.load_or_train(lambda: resnet_mini(len(classes), config.blocks, config.widths))
        load = inputs.__getitem__
    else:
        dataset = image_data.ImageFolder(workload.root, "val", train=False, size=224)
        labels = np.array([label for _, label in dataset.items])
        model = cache.load_or_train(lambda: resnet50(len(dataset.classes)))
        load = lambda i: dataset[i][0].numpy()  # noqa: E731 - decoded on demand by the QSL

    return serve_bundle(options, cache, _bundle(model), name="resnet50",
                        total=served_count(options, len(labels)), load=load, output_dtype="int32",
                        score=_top1(labels), metric="accuracy", max_batch=64)
