"""DLRM in plain torch (Naumov et al. 2019), as MLPerf's reference builds it.

    dense features (13) -> bottom MLP -> x (d)                 ┐
    categorical ids (26) -> embedding rows e_1 .. e_26 (d each) ┴> pairwise dot products of
    [x, e_1 .. e_26] (27*26/2 = 351) concatenated with x -> top MLP -> click logit

The reference is d = 128, bottom MLP 13-512-256-128, top MLP 479-1024-1024-512-256-1; the
mini model is the same design with d = 16 and narrower MLPs. All 26 tables live in one
embedding matrix (one row range per feature, `offsets`), so that a batch is one lookup; its
gradient is sparse (only the looked-up rows), which plain SGD applies directly, as the
reference does. Initialisation follows the reference: each table uniform in
±sqrt(1/rows), MLP weights normal with std sqrt(2/(fan_in + fan_out)), biases std sqrt(1/fan_out).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        nn.init.normal_(linear.weight, 0.0, math.sqrt(2.0 / (n_in + n_out)))
        nn.init.normal_(linear.bias, 0.0, math.sqrt(1.0 / n_out))
        layers.append(linear)
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, table_sizes: list[int], embedding_dim: int, num_dense: int,
                 bottom_mlp: tuple[int, ...], top_mlp: tuple[int, ...]):
        super().__init__()
        if bottom_mlp[-1] != embedding_dim:
            raise ValueError("the bottom MLP must end in the embedding dimension")
        self.table_sizes = list(table_sizes)
        self.embeddings = nn.Embedding(sum(table_sizes), embedding_dim, sparse=True)
        with torch.no_grad():
            start = 0
            for rows in table_sizes:
                bound = math.sqrt(1.0 / rows)
                self.embeddings.weight[start:start + rows].uniform_(-bound, bound)
                start += rows
        self.register_buffer("offsets", torch.tensor([0] + list(table_sizes[:-1])).cumsum(0))
        self.bottom_mlp = _mlp([num_dense, *bottom_mlp], last_activation=True)
        features = len(table_sizes) + 1
        rows, cols = torch.tril_indices(features, features, offset=-1)
        self.register_buffer("pair_rows", rows)
        self.register_buffer("pair_cols", cols)
        interactions = features * (features - 1) // 2
        self.top_mlp = _mlp([interactions + embedding_dim, *top_mlp], last_activation=False)

    def forward(self, dense: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Click logits (batch,) from dense (batch, 13) and per-feature ids (batch, 26)."""
        x = self.bottom_mlp(dense)
        e = self.embeddings(categorical + self.offsets)                 # (batch, 26, d)
        t = torch.cat([x.unsqueeze(1), e], dim=1)                       # (batch, 27, d)
        z = torch.bmm(t, t.transpose(1, 2))[:, self.pair_rows, self.pair_cols]
        return self.top_mlp(torch.cat([x, z], dim=1)).squeeze(1)


def mlperf_tensor_names(model: DLRM) -> list[str]:
    """The names MLPerf's closed rules expect in `weights_initialization`."""
    bottom = sum(isinstance(m, nn.Linear) for m in model.bottom_mlp)
    top = sum(isinstance(m, nn.Linear) for m in model.top_mlp)
    return (["embeddings"] + [f"bottom_mlp_dense{i + 1}" for i in range(bottom)]
            + [f"top_mlp_dense{i + 1}" for i in range(top)])
