"""MiniGo's policy-value network (the dual residual net of the MLPerf reference) and a small
weights file format (its input features and the board symmetries: `mlpace.benchmarks.minigo.data`).

The network: a 3x3 conv + BN stem, `blocks` residual blocks (two 3x3 conv + BN each), a policy
head (1x1 conv to 2 planes, BN without scale/shift, a dense layer to size*size+1 move logits)
and a value head (1x1 conv to 1 plane, BN without scale/shift, dense, dense to one tanh value).
With 6 blocks this is exactly the tensor list of the closed MLPerf v1.1 minigo rules; the
MLPerf v1.0/v1.1 reference is 19x19 with 64 filters, 6 blocks, a value layer of 64 and the
13 `mlperf07` input planes (ml_perf/flags/19/architecture.flags).

Weights files are JSON (base64 float16 arrays): small, portable, no pickle, and shipped as
ordinary package data.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mlpace.benchmarks.minigo.data import FEATURE_PLANES
from mlpace.errors import MlpaceError

class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class MiniGoNet(nn.Module):
    def __init__(self, board_size: int, width: int = 32, blocks: int = 2, fc_width: int = 32,
                 feature_set: str = "basic"):
        super().__init__()
        if feature_set not in FEATURE_PLANES:
            raise MlpaceError(f"unknown minigo input features {feature_set!r}; "
                              f"use one of {', '.join(FEATURE_PLANES)}")
        self.board_size, self.feature_set = board_size, feature_set
        self.arch = {"board_size": board_size, "width": width, "blocks": blocks, "fc_width": fc_width,
                     "feature_set": feature_set}
        points = board_size * board_size
        self.stem = nn.Conv2d(FEATURE_PLANES[feature_set], width, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(blocks))
        self.policy_conv = nn.Conv2d(width, 2, 1, bias=False)
        self.policy_bn = nn.BatchNorm2d(2, affine=False)
        self.policy_fc = nn.Linear(2 * points, points + 1)
        self.value_conv = nn.Conv2d(width, 1, 1, bias=False)
        self.value_bn = nn.BatchNorm2d(1, affine=False)
        self.value_fc1 = nn.Linear(points, fc_width)
        self.value_fc2 = nn.Linear(fc_width, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(move logits [B, size*size+1], value in [-1, 1] for the player to play [B])."""
        x = F.relu(self.stem_bn(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        p = F.relu(self.policy_bn(self.policy_conv(x))).flatten(1)
        v = F.relu(self.value_bn(self.value_conv(x))).flatten(1)
        v = torch.tanh(self.value_fc2(F.relu(self.value_fc1(v)))).squeeze(1)
        return self.policy_fc(p), v


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights and bias of one convolution followed by its batch norm in eval mode."""
    scale = (bn.running_var + bn.eps).rsqrt()
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale + (bn.bias if bn.affine else 0)
    return conv.weight * scale[:, None, None, None], shift


def search_network(model: MiniGoNet):
    """`model`'s eval-mode forward with each batch norm folded into its convolution, as a plain
    function of a snapshot of the weights: what MCTS calls tens of thousands of times a
    generation on small batches, where the module calls and the separate batch norms cost
    about as much as the convolutions. Same values as `model.eval()(x)` up to float rounding."""
    with torch.no_grad():
        stem = _fold(model.stem, model.stem_bn)
        blocks = [(_fold(b.conv1, b.bn1), _fold(b.conv2, b.bn2)) for b in model.blocks]
        policy = _fold(model.policy_conv, model.policy_bn)
        value = _fold(model.value_conv, model.value_bn)
        policy_fc = (model.policy_fc.weight.clone(), model.policy_fc.bias.clone())
        value_fc1 = (model.value_fc1.weight.clone(), model.value_fc1.bias.clone())
        value_fc2 = (model.value_fc2.weight.clone(), model.value_fc2.bias.clone())

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(F.conv2d(x, *stem, padding=1))
        for first, second in blocks:
            y = F.relu(F.conv2d(x, *first, padding=1))
            x = F.relu(x + F.conv2d(y, *second, padding=1))
        p = F.relu(F.conv2d(x, *policy)).flatten(1)
        v = F.relu(F.conv2d(x, *value)).flatten(1)
        v = torch.tanh(F.linear(F.relu(F.linear(v, *value_fc1)), *value_fc2)).squeeze(1)
        return F.linear(p, *policy_fc), v
    return forward


def mlperf_tensor_names(model: MiniGoNet) -> list[str]:
    """The TensorFlow names the MLPerf reference gives the trained tensors, in layer order."""
    names, conv, bn = [], 0, 0

    def conv_name():
        nonlocal conv
        name = "conv2d" if conv == 0 else f"conv2d_{conv}"
        conv += 1
        return f"{name}/kernel"

    def bn_names():
        nonlocal bn
        name = "batch_normalization" if bn == 0 else f"batch_normalization_{bn}"
        bn += 1
        return [f"{name}/gamma", f"{name}/beta"]

    names += [conv_name(), *bn_names()]
    for _ in model.blocks:
        names += [conv_name(), *bn_names(), conv_name(), *bn_names()]
    names += [conv_name(), "dense/kernel", "dense/bias"]                 # policy head
    names += [conv_name(), "dense_1/kernel", "dense_1/bias", "dense_2/kernel", "dense_2/bias"]
    return names + ["global_step"]


def save_weights(model: MiniGoNet, path: Path) -> None:
    """Write the model as JSON (architecture + base64 float16 tensors), atomically."""
    tensors = {name: {"shape": list(t.shape),
                      "data": base64.b64encode(t.detach().cpu().to(torch.float16).numpy().tobytes()).decode()}
               for name, t in model.state_dict().items() if t.is_floating_point()}
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": "mlpace-minigo-1", "arch": model.arch, "tensors": tensors}))
    tmp.replace(path)


def load_weights(path: Path) -> MiniGoNet:
    try:
        doc = json.loads(Path(path).read_text())
        model = MiniGoNet(**doc["arch"])
        state = model.state_dict()
        for name, t in doc["tensors"].items():
            data = np.frombuffer(base64.b64decode(t["data"]), dtype=np.float16).reshape(t["shape"])
            state[name] = torch.from_numpy(data.astype(np.float32))
        model.load_state_dict(state)
    except OSError as err:
        raise MlpaceError(f"cannot read minigo weights {path}: {err.strerror or err}") from None
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise MlpaceError(f"{path} is not a minigo weights file ({type(err).__name__}: {err})") from None
    return model.eval()
