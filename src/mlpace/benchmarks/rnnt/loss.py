"""The RNN-T loss (Graves 2012) in plain torch.

For one utterance with encoder length T and target y_1..y_U, the lattice node (t, u) has
emitted u labels after reading t+1 frames; from it the joint's log-probabilities give
blank(t, u) (move to t+1) and label(t, u) = log p(y_{u+1} | t, u) (move to u+1). The forward
variable is

    alpha(0, 0) = 0
    alpha(t, u) = logaddexp(alpha(t-1, u) + blank(t-1, u), alpha(t, u-1) + label(t, u-1))

and -log p(y | x) = -(alpha(T-1, U) + blank(T-1, U)). Along one row t the recurrence in u is
a linear recurrence in log space: with C(t, u) = sum_{j<u} label(t, j) and
a(u) = alpha(t-1, u) + blank(t-1, u),

    alpha(t, u) = C(t, u) + logcumsumexp_{k<=u}(a(k) - C(t, k)),

so each row is two cumulative operations over u, and the only Python loop is over T.
Gradients come from autograd through that loop (checked against the brute-force sum over all
alignments in the tests).
"""

from __future__ import annotations

import torch


def rnnt_lattice(logits: torch.Tensor, targets: torch.Tensor, blank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(blank log-probs (B, T, U+1), label log-probs (B, T, U)) from joint logits (B, T, U+1, V)."""
    log_probs = (logits if logits.dtype == torch.float64 else logits.float()).log_softmax(-1)
    B, T, U1, _ = log_probs.shape
    blank_lp = log_probs[..., blank]
    index = targets[:, None, :, None].expand(B, T, U1 - 1, 1)
    label_lp = log_probs[:, :, :-1].gather(-1, index).squeeze(-1)
    return blank_lp, label_lp


def rnnt_alphas(blank_lp: torch.Tensor, label_lp: torch.Tensor) -> torch.Tensor:
    """alpha (B, T, U+1) of the lattice (see the module docstring)."""
    B, T, U1 = blank_lp.shape
    C = torch.cat([label_lp.new_zeros(B, T, 1), label_lp.cumsum(-1)], dim=-1)   # (B, T, U+1)
    rows = [C[:, 0]]
    for t in range(1, T):
        a = rows[-1] + blank_lp[:, t - 1]
        rows.append(C[:, t] + torch.logcumsumexp(a - C[:, t], dim=-1))
    return torch.stack(rows, dim=1)


def rnnt_loss(logits: torch.Tensor, targets: torch.Tensor, logit_lens: torch.Tensor,
              target_lens: torch.Tensor, blank: int, reduction: str = "mean") -> torch.Tensor:
    """-log p(targets | inputs) per utterance ("none"), or their mean ("mean") or sum ("sum").

    logits (B, T, U+1, V) from the joint network (unnormalised), targets (B, U) int64 padded
    with any valid class, logit_lens (B,) encoder lengths <= T, target_lens (B,) <= U.
    Padding beyond an utterance's lengths does not affect its loss (alpha(t, u) depends only on
    nodes t' <= t, u' <= u).
    """
    blank_lp, label_lp = rnnt_lattice(logits, targets.long(), blank)
    alphas = rnnt_alphas(blank_lp, label_lp)
    b = torch.arange(alphas.shape[0], device=alphas.device)
    t_last, u_last = logit_lens.long().to(alphas.device) - 1, target_lens.long().to(alphas.device)
    nll = -(alphas[b, t_last, u_last] + blank_lp[b, t_last, u_last])
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    return nll
