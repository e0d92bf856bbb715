"""BERT for pre-training in plain torch (masked LM + next-sentence heads), and LAMB.

Module names follow the TensorFlow checkpoint names MLPerf's closed rules list in
`weights_initialization` (`bert/encoder/layer_0/attention/self/query/kernel` ...), so that
`mlperf_tensor_names` can map every parameter to its MLPerf name. The masked-LM decoder shares
its weights with the word embeddings, as in BERT; only masked positions go through the head.
Attention is torch's `scaled_dot_product_attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Embeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, max_len: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_len, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, input_ids, segment_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(segment_ids))
        return self.LayerNorm(x)


class Layer(nn.Module):
    """One post-LayerNorm transformer layer, BERT's."""

    def __init__(self, hidden: int, heads: int, intermediate: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, attention_mask):
        b, n, h = x.shape

        def split(t):
            return t.view(b, n, self.heads, h // self.heads).transpose(1, 2)
        context = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                                 split(self.value(x)), attn_mask=attention_mask)
        x = self.attention_norm(x + self.attention_output(context.transpose(1, 2).reshape(b, n, h)))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertForPreTraining(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, intermediate: int,
                 max_len: int):
        super().__init__()
        self.embeddings = Embeddings(vocab, hidden, max_len)
        self.layers = nn.ModuleList(Layer(hidden, heads, intermediate) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.transform = nn.Linear(hidden, hidden)
        self.transform_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.output_bias = nn.Parameter(torch.zeros(vocab))
        self.seq_relationship = nn.Linear(hidden, 2)
        self.apply(_init_weights)

    def forward(self, input_ids, input_mask, segment_ids, masked_positions):
        """(masked-LM logits (batch, max_pred, vocab), next-sentence logits (batch, 2))."""
        # A boolean mask: True where attention is allowed (the real tokens).
        attention_mask = input_mask[:, None, None, :].bool()
        x = self.embeddings(input_ids, segment_ids)
        for layer in self.layers:
            x = layer(x, attention_mask)
        nsp = self.seq_relationship(torch.tanh(self.pooler(x[:, 0])))
        picked = torch.gather(x, 1, masked_positions[:, :, None].expand(-1, -1, x.shape[-1]))
        h = self.transform_norm(F.gelu(self.transform(picked)))
        mlm = h @ self.embeddings.word_embeddings.weight.T + self.output_bias
        return mlm, nsp


def _init_weights(module: nn.Module) -> None:
    """BERT's initialisation: truncated normal(0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


_LAYER_NAMES = {
    "query": "attention/self/query", "key": "attention/self/key", "value": "attention/self/value",
    "attention_output": "attention/output/dense", "attention_norm": "attention/output/LayerNorm",
    "intermediate": "intermediate/dense", "output": "output/dense", "output_norm": "output/LayerNorm",
}
_TOP_NAMES = {
    "embeddings.word_embeddings.weight": "bert/embeddings/word_embeddings",
    "embeddings.position_embeddings.weight": "bert/embeddings/position_embeddings",
    "embeddings.token_type_embeddings.weight": "bert/embeddings/token_type_embeddings",
    "pooler": "bert/pooler/dense", "transform": "cls/predictions/transform/dense",
    "transform_norm": "cls/predictions/transform/LayerNorm",
    "output_bias": "cls/predictions/output_bias", "seq_relationship": "cls/seq_relationship",
}


def mlperf_name(parameter: str) -> str:
    """`layers.3.query.weight` -> `bert/encoder/layer_3/attention/self/query/kernel`."""
    if parameter in _TOP_NAMES:
        return _TOP_NAMES[parameter]
    module, kind = parameter.rsplit(".", 1)
    if module == "embeddings.LayerNorm":
        base = "bert/embeddings/LayerNorm"
    elif module.startswith("layers."):
        _, index, name = module.split(".")
        base = f"bert/encoder/layer_{index}/{_LAYER_NAMES[name]}"
    else:
        base = _TOP_NAMES[module]
    if base.endswith("LayerNorm"):
        return f"{base}/{'gamma' if kind == 'weight' else 'beta'}"
    if base == "cls/seq_relationship":      # TF stores this one as output_weights/output_bias
        return f"{base}/{'output_weights' if kind == 'weight' else 'output_bias'}"
    return f"{base}/{'kernel' if kind == 'weight' else 'bias'}"


def mlperf_tensor_names(model: BertForPreTraining) -> list[str]:
    return [mlperf_name(name) for name, _ in model.named_parameters()]


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019) as MLPerf's BERT reference uses it: Adam moments with bias
    correction, decoupled weight decay, and a per-tensor trust ratio ||w|| / ||update||."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["m"], state["v"], state["step"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt_().add_(group["eps"]))
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update.mul_(trust), alpha=-group["lr"])   # no host sync on GPU
        return None


class BertForQuestionAnswering(nn.Module):
    """BERT with SQuAD's span head: a start and an end logit per token (`qa_outputs`, as
    Google's `run_squad.py` names it). The encoder's names are those of `BertForPreTraining`,
    so a pre-trained state_dict loads into it (`load_encoder`)."""

    def __init__(self, vocab: int, hidden: int, layers: int, heads: int, intermediate: int,
                 max_len: int):
        super().__init__()
        self.embeddings = Embeddings(vocab, hidden, max_len)
        self.layers = nn.ModuleList(Layer(hidden, heads, intermediate) for _ in range(layers))
        self.qa_outputs = nn.Linear(hidden, 2)
        self.apply(_init_weights)

    def forward(self, input_ids, input_mask, segment_ids):
        """Logits (batch, seq_len, 2): [..., 0] start, [..., 1] end (MLPerf's SUT output)."""
        attention_mask = input_mask[:, None, None, :].bool()
        x = self.embeddings(input_ids, segment_ids)
        for layer in self.layers:
            x = layer(x, attention_mask)
        return self.qa_outputs(x)

    def load_encoder(self, pretrained: dict) -> None:
        """Embeddings and transformer layers from a `BertForPreTraining` state_dict."""
        encoder = {k: v for k, v in pretrained.items() if k.startswith(("embeddings.", "layers."))}
        missing, _ = self.load_state_dict(encoder, strict=False)
        if [k for k in missing if not k.startswith("qa_outputs.")]:
            raise ValueError(f"the pre-trained state_dict lacks {missing[0]}")
