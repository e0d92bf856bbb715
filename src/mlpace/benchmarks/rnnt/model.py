"""The MLPerf RNN-T (rnnt/model.py of the reference) and its greedy decoder.

Encoder: `pre_rnn` LSTM layers, time stacking (concatenate `stack_time` consecutive outputs,
halving the frame rate), `post_rnn` LSTM layers. Prediction network: an embedding of the
previous non-blank symbol (a zero vector at the start) and `dec_rnn` LSTM layers. Joint:
`joint_enc` and `joint_pred` linear projections added over the (T, U+1) lattice, then ReLU,
dropout and `joint_net`'s output layer over the classes; the blank is the last class.
Reference sizes: 240 inputs (80 mels x 3 stacked frames), encoder 2 + 3 layers of 1024,
stack 2, prediction 2 layers of 512, joint 512, 1024 classes (1023 SentencePieces + blank);
LSTM forget-gate input biases start at 1.0 and hidden-hidden forget biases at 0.
"""

from __future__ import annotations

import torch
from torch import nn

MLPERF_TENSORS = ["pre_rnn", "post_rnn", "pred_embed", "dec_rnn", "joint_pred", "joint_enc", "joint_net"]


def lstm(input_size: int, hidden: int, layers: int, dropout: float, forget_gate_bias: float,
         weights_init_scale: float = 1.0) -> nn.LSTM:
    """nn.LSTM with the reference's initialisation (common/rnn.py)."""
    rnn = nn.LSTM(input_size, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0)
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if "weight" in name:
                p.mul_(weights_init_scale)
            elif "bias_ih" in name:
                p.mul_(weights_init_scale)
                p[hidden:2 * hidden].fill_(forget_gate_bias)
            elif "bias_hh" in name:
                p[hidden:2 * hidden].zero_()
    return rnn


class StackTime(nn.Module):
    def __init__(self, factor: int):
        super().__init__()
        self.factor = int(factor)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, B, H) -> (ceil(T / f), B, H f); lengths rounded up."""
        T, B, H = x.shape
        pad = (-T) % self.factor
        if pad:
            x = torch.cat([x, x.new_zeros(pad, B, H)])
        x = x.transpose(0, 1).reshape(B, -1, H * self.factor).transpose(0, 1)
        return x, (lens + self.factor - 1) // self.factor


class RNNT(nn.Module):
    def __init__(self, n_classes: int, in_feats: int, enc_n_hid: int = 1024, enc_pre_rnn_layers: int = 2,
                 enc_post_rnn_layers: int = 3, enc_stack_time_factor: int = 2, enc_dropout: float = 0.1,
                 pred_n_hid: int = 512, pred_rnn_layers: int = 2, pred_dropout: float = 0.3,
                 joint_n_hid: int = 512, joint_dropout: float = 0.3, forget_gate_bias: float = 1.0,
                 weights_init_scale: float = 1.0):
        super().__init__()
        self.n_classes, self.blank, self.pred_n_hid = n_classes, n_classes - 1, pred_n_hid
        self.encoder = nn.ModuleDict({
            "pre_rnn": lstm(in_feats, enc_n_hid, enc_pre_rnn_layers, enc_dropout, forget_gate_bias,
                            weights_init_scale),
            "stack_time": StackTime(enc_stack_time_factor),
            "post_rnn": lstm(enc_stack_time_factor * enc_n_hid, enc_n_hid, enc_post_rnn_layers, enc_dropout,
                             forget_gate_bias, weights_init_scale),
        })
        self.enc_dropout = nn.Dropout(enc_dropout)
        self.prediction = nn.ModuleDict({
            "embed": nn.Embedding(n_classes - 1, pred_n_hid),
            "dec_rnn": lstm(pred_n_hid, pred_n_hid, pred_rnn_layers, pred_dropout, forget_gate_bias,
                            weights_init_scale),
        })
        self.pred_dropout = nn.Dropout(pred_dropout)
        self.joint_pred = nn.Linear(pred_n_hid, joint_n_hid)
        self.joint_enc = nn.Linear(enc_n_hid, joint_n_hid)
        self.joint_net = nn.Sequential(nn.ReLU(), nn.Dropout(joint_dropout), nn.Linear(joint_n_hid, n_classes))

    def encode(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, F), lengths -> encoder output (B, T', H), lengths T'."""
        h, _ = self.encoder["pre_rnn"](self.enc_dropout(x.transpose(0, 1)))
        h, lens = self.encoder["stack_time"](h, lens)
        h, _ = self.encoder["post_rnn"](self.enc_dropout(h))
        return h.transpose(0, 1), lens

    def predict(self, y: torch.Tensor | None, state=None, add_sos: bool = True):
        """labels (B, U) -> (B, U+1, H) with a start step first (or one step from `state`)."""
        if y is None:
            B = 1 if state is None else state[0].shape[1]
            emb = self.joint_enc.weight.new_zeros(B, 1, self.pred_n_hid)
        else:
            emb = self.prediction["embed"](y)
        if add_sos:
            emb = torch.cat([emb.new_zeros(emb.shape[0], 1, emb.shape[2]), emb], dim=1)
        g, state = self.prediction["dec_rnn"](self.pred_dropout(emb).transpose(0, 1), state)
        return g.transpose(0, 1), state

    def joint(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(B, T, H), (B, U+1, H) -> logits (B, T, U+1, classes)."""
        return self.joint_net(self.joint_enc(f).unsqueeze(2) + self.joint_pred(g).unsqueeze(1))

    def forward(self, x, x_lens, y):
        f, f_lens = self.encode(x, x_lens)
        g, _ = self.predict(y)
        return self.joint(f, g), f_lens

    @torch.no_grad()
    def greedy_decode(self, x: torch.Tensor, lens: torch.Tensor, max_symbols_per_step: int = 30,
                      max_symbols: int = 300) -> list[list[int]]:
        """Batched greedy decoding: at every frame, emit the argmax symbol and advance the
        prediction network until the joint says blank (at most `max_symbols_per_step` symbols a
        frame and `max_symbols` an utterance, as the reference's decoder limits)."""
        f, f_lens = self.encode(x, lens)
        f = self.joint_enc(f)
        B, T, _ = f.shape
        g, state = self.predict(None, (f.new_zeros(self.prediction["dec_rnn"].num_layers, B, self.pred_n_hid),) * 2,
                                add_sos=False)
        g = self.joint_pred(g[:, 0])
        hyps: list[list[int]] = [[] for _ in range(B)]
        counts = torch.zeros(B, dtype=torch.long, device=f.device)
        for t in range(T):
            active = (f_lens > t) & (counts < max_symbols)
            for _ in range(max_symbols_per_step):
                if not bool(active.any()):
                    break
                k = self.joint_net(f[:, t] + g).argmax(-1)
                emit = active & (k != self.blank)
                if not bool(emit.any()):
                    break
                for b in emit.nonzero()[:, 0].tolist():
                    hyps[b].append(int(k[b]))
                counts += emit.long()
                symbols = torch.where(emit, k, torch.zeros_like(k))
                out, new_state = self.predict(symbols[:, None], state, add_sos=False)
                keep = emit[None, :, None]
                state = (torch.where(keep, new_state[0], state[0]), torch.where(keep, new_state[1], state[1]))
                g = torch.where(emit[:, None], self.joint_pred(out[:, 0]), g)
                active = emit & (counts < max_symbols)
        return hyps


def mlperf_tensor_names(model: RNNT | None = None) -> list[str]:
    """The tensors the closed rnnt rules name in `weights_initialization` (one per module)."""
    return list(MLPERF_TENSORS)
