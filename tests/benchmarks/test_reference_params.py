"""`--scale reference` builds MLPerf's reference models, parameter for parameter.

Each test builds mlpace's reference model from the reference config, without data, on torch's
meta device (shapes only: even DLRM's 24-billion-parameter tables cost nothing), and compares
its parameter count with the official one. The official figure is worked out below from the
official code's layer shapes (source path and commit named in each test), with small helpers
that count what the official layers create; the literal is that arithmetic's result.
"""

from __future__ import annotations

import torch

from mlpace.benchmarks.bert.model import BertForPreTraining
from mlpace.benchmarks.bert.workload import CONFIGS as BERT
from mlpace.benchmarks.dlrm.data import NUM_DENSE
from mlpace.benchmarks.dlrm.model import DLRM
from mlpace.benchmarks.dlrm.workload import CONFIGS as DLRM_CONFIGS
from mlpace.benchmarks.maskrcnn.model import maskrcnn_resnet50_fpn
from mlpace.benchmarks.minigo.workload import CONFIGS as MINIGO, new_model
from mlpace.benchmarks.resnet.model import resnet50
from mlpace.benchmarks.rnnt.workload import CONFIGS as RNNT, build_model as build_rnnt
from mlpace.benchmarks.ssd.workload import CONFIGS as SSD, build_model as build_ssd
from mlpace.benchmarks.unet3d.model import UNet3D
from mlpace.benchmarks.unet3d.workload import CONFIGS as UNET3D


def count(build) -> tuple[int, int]:
    """(all parameters, trainable parameters) of the model `build()` makes, built on meta."""
    with torch.device("meta"):
        model = build()
    params = list(model.parameters())
    assert all(p.is_meta for p in params)        # really built without memory
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


# What one official layer holds (weights + biases).
def conv(k: int, cin: int, cout: int, bias: bool = True, dims: int = 2) -> int:
    return k ** dims * cin * cout + (cout if bias else 0)


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def norm(channels: int) -> int:        # BatchNorm / InstanceNorm(affine) / LayerNorm: scale + shift
    return 2 * channels


def lstm(n_in: int, hidden: int, layers: int) -> int:   # torch.nn.LSTM: 4 gates, bias_ih + bias_hh
    return sum(4 * hidden * ((n_in if i == 0 else hidden) + hidden) + 8 * hidden for i in range(layers))


def bottlenecks(blocks, widths, with_bn: bool) -> int:
    """ResNet-50's bottleneck stages (1x1, 3x3, 1x1 convs without bias; a 1x1 projection in
    each stage's first block), with or without their BatchNorm parameters."""
    total, cin = 0, 64
    for n, w in zip(blocks, widths):
        for b in range(n):
            total += conv(1, cin, w, False) + conv(3, w, w, False) + conv(1, w, 4 * w, False)
            total += (norm(w) * 2 + norm(4 * w)) if with_bn else 0
            if b == 0:
                total += conv(1, cin, 4 * w, False) + (norm(4 * w) if with_bn else 0)
            cin = 4 * w
    return total


def test_resnet_is_resnet50_v1_5():
    # mlcommons/training image_classification/tensorflow2 (resnet_model.py, the Keras ResNet-50
    # v1.5; 1000 classes: imagenet_preprocessing.py @48c266b43737b18661e75c6ef568c519f117ed0e
    # shifts labels to [0, 1000)): 7x7 stem + BN, bottlenecks (3, 4, 6, 3), dense 2048 -> 1000.
    official = conv(7, 3, 64, False) + norm(64) + bottlenecks((3, 4, 6, 3), (64, 128, 256, 512), True) \
        + dense(2048, 1000)
    assert official == 25_557_032
    assert count(lambda: resnet50(1000)) == (official, official)


def test_ssd_is_ssd300_resnet34():
    # mlcommons/training single_stage_detector/ssd/ssd300.py @0a18eb3a4d7ec9525ea4259cb42da165f3573865
    # (+ base_model.py ResNet34: torchvision's conv1/bn1/layer1-3, layer3 unstrided), 81 classes.
    def basic_blocks(n, cin, cout):
        total = 0
        for b in range(n):
            total += conv(3, cin if b == 0 else cout, cout, False) + conv(3, cout, cout, False) + 2 * norm(cout)
            if b == 0 and cin != cout:
                total += conv(1, cin, cout, False) + norm(cout)
        return total
    backbone = conv(7, 3, 64, False) + norm(64) + basic_blocks(3, 64, 64) + basic_blocks(4, 64, 128) \
        + basic_blocks(6, 128, 256)
    out = [256, 512, 512, 256, 256, 256]
    middle = [256, 256, 128, 128, 128]                  # _build_additional_features' 1x1 widths
    extra = sum(conv(1, out[i], middle[i]) + conv(3, middle[i], out[i + 1]) for i in range(5))
    defaults = [4, 6, 6, 6, 4, 4]
    heads = sum(conv(3, c, d * 4) + conv(3, c, d * 81) for c, d in zip(out, defaults))
    official = backbone + extra + heads
    assert official == 19_972_534
    assert count(lambda: build_ssd(SSD["reference"], 81)) == (official, official)


def test_maskrcnn_is_maskrcnn_benchmark_r50_fpn():
    # mlcommons/training object_detection/pytorch (maskrcnn-benchmark, e2e_mask_rcnn_R_50_FPN_1x):
    # roi_heads/mask_head/roi_mask_feature_extractors.py @7749e43438297465af433d1a68ea39d1ed4d182b,
    # roi_mask_predictors.py @f3939982683ca1ab023898d21d78b5f2c44f1c17, make_layers.py
    # @5fd31d14852afe4a73d98f64ad6c8a11a2fdb5eb; config defaults: RESNETS.STRIDE_IN_1X1 True,
    # BACKBONE.FREEZE_CONV_BODY_AT 2, FrozenBatchNorm2d (buffers, not parameters), no classifier.
    body = conv(7, 3, 64, False) + bottlenecks((3, 4, 6, 3), (64, 128, 256, 512), with_bn=False)
    fpn = sum(conv(1, c, 256) + conv(3, 256, 256) for c in (256, 512, 1024, 2048))
    rpn = conv(3, 256, 256) + conv(1, 256, 3) + conv(1, 256, 3 * 4)          # 3 anchors per cell
    box = dense(256 * 7 * 7, 1024) + dense(1024, 1024) + dense(1024, 81) + dense(1024, 81 * 4)
    mask = 4 * conv(3, 256, 256) + conv(2, 256, 256) + conv(1, 256, 81)     # fcn1-4, deconv, logits
    official = body + fpn + rpn + box + mask
    frozen = conv(7, 3, 64, False) + bottlenecks((3,), (64,), with_bn=False)  # stem + res2
    assert official == 44_347_573 and official - frozen == 44_125_173
    assert count(lambda: maskrcnn_resnet50_fpn(81)) == (official, official - frozen)


def test_bert_is_bert_large():
    # mlcommons/training language_model/tensorflow/bert/modeling.py @c8fa6194355fee3f0cb1b9a3fc2fa7887f0ece70
    # and run_pretraining.py @373dfedaa34a5c502e2e0d762e2b9fb20074762e (bert_config: vocab 30522,
    # hidden 1024, 24 layers, intermediate 4096, 512 positions, 2 token types); the masked-LM
    # output reuses the word embeddings (tied) plus its own bias.
    h, vocab = 1024, 30522
    embeddings = vocab * h + 512 * h + 2 * h + norm(h)
    layer = 4 * dense(h, h) + norm(h) + dense(h, 4096) + dense(4096, h) + norm(h)
    heads = dense(h, h) + dense(h, h) + norm(h) + vocab + dense(h, 2)       # pooler, MLM, NSP
    official = embeddings + 24 * layer + heads
    assert official == 336_226_108
    b = BERT["reference"]
    assert count(lambda: BertForPreTraining(b.vocab_size, b.hidden, b.layers, b.heads, b.intermediate,
                                            b.max_seq_len)) == (official, official)


# The 26 table sizes of MLPerf's Criteo Terabyte (max-ind-range 40,000,000) DLRM.
DLRM_TABLES = [39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10,
               2208, 11938, 155, 4, 976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36]


def test_dlrm_is_mlperfs_dlrm():
    # mlcommons/training recommendation (v1.0: facebookresearch/dlrm dlrm_s_pytorch.py, run with
    # --arch-sparse-feature-size=128 --arch-mlp-bot=13-512-256-128 --arch-mlp-top=1024-1024-512-256-1
    # --max-ind-range=40000000); the table sizes as mlcommons/inference
    # recommendation/dlrm/pytorch/python/main.py @002dfdb40c2b5372251feaa5cb263ad00386bc8b lists
    # them for "Criteo Terabyte MLPerf training".
    bottom = dense(13, 512) + dense(512, 256) + dense(256, 128)
    top_in = 27 * 26 // 2 + 128                                              # dot interactions + x
    top = dense(top_in, 1024) + dense(1024, 1024) + dense(1024, 512) + dense(512, 256) + dense(256, 1)
    official = sum(DLRM_TABLES) * 128 + bottom + top
    assert official == 24_036_595_969
    d = DLRM_CONFIGS["reference"]
    assert count(lambda: DLRM(DLRM_TABLES, d.embedding_dim, NUM_DENSE, d.bottom_mlp, d.top_mlp)) \
        == (official, official)


def test_minigo_is_the_19x19_reference_network():
    # MLPerf v1.0/v1.1 minigo (mlcommons/training minigo/, tensorflow/minigo's ml_perf):
    # dual_net.py (model_inference_fn; the copy in mlcommons/training_results_v0.7
    # NVIDIA/.../minigo/dual_net.py @c66406115bb3c60cb9c49889b076727ccecba31e) with
    # ml_perf/flags/19/architecture.flags (same commit, Intel/.../ml_perf/flags/19/): conv_width 64,
    # fc_width 64, trunk_layers 6 (the closed rules' tensor list: 13 conv + BN in the trunk),
    # input_features mlperf07 = 13 planes (tensorflow/minigo cc/model/features.h
    # @0c98588740cba3fe077f44666191efae904678c1: StoneFeatures<4>, ToPlay, Liberty(3), WouldCapture).
    n, width, fc = 19 * 19, 64, 64
    trunk = conv(3, 13, width, False) + norm(width) + 6 * 2 * (conv(3, width, width, False) + norm(width))
    policy = conv(1, width, 2, False) + dense(2 * n, n + 1)        # its BN: center=False, scale=False
    value = conv(1, width, 1, False) + dense(n, fc) + dense(fc, 1)
    official = trunk + policy + value
    assert official == 736_671
    assert count(lambda: new_model(MINIGO["reference"])) == (official, official)


def test_rnnt_is_the_reference_rnnt_over_1023_pieces():
    # mlcommons/training rnn_speech_recognition/pytorch/rnnt/model.py @304f6ebd3dceb7b827eb9cef2dbc5d088258bd8e,
    # common/rnn.py @3c1db881a599bf94cd82373ac674faf06ab9fc0a (torch.nn.LSTM),
    # configs/baseline_v3-1023sp.yaml @1bb9419234c6efc9031143ac72616845a4888517; n_classes =
    # tokenizer.num_labels + 1 with the 1023-piece model of scripts/create_sentencepieces.sh
    # (common/data/text.py @3c1db881: num_labels = len(sentencepiece)); the embedding has
    # n_classes - 1 rows (no blank).
    classes = 1023 + 1
    encoder = lstm(240, 1024, 2) + lstm(2 * 1024, 1024, 3)
    prediction = (classes - 1) * 512 + lstm(512, 512, 2)
    joint = dense(512, 512) + dense(1024, 512) + dense(512, classes)
    official = encoder + prediction + joint
    assert official == 49_006_080
    cfg = RNNT["reference"]
    assert count(lambda: build_rnnt(cfg, cfg.sentencepiece_vocab + 1)) == (official, official)


def test_unet3d_is_the_reference_unet3d():
    # mlcommons/training image_segmentation/pytorch/model/unet3d.py @2c05bba037f97e527b12179a322f28c8af5a7435
    # and model/layers.py @4e11283d7688f2e6e45cdc146a99efe463c6ba11: filters 32-64-128-256-320,
    # convs without bias before InstanceNorm3d(affine), transposed 2x2x2 convs with bias,
    # a 1x1x1 output conv with bias, 1 input channel, 3 classes.
    f = [32, 64, 128, 256, 320]

    def block(cin, cout):                                   # two conv 3^3 + instance norm
        return conv(3, cin, cout, False, 3) + norm(cout) + conv(3, cout, cout, False, 3) + norm(cout)
    down = block(1, 32) + sum(block(i, o) for i, o in zip(f[:-1], f[1:])) + block(320, 320)
    ups = [(320, 320)] + list(zip(reversed(f[1:]), reversed(f[:-1])))
    up = sum(conv(2, i, o, True, 3) + block(2 * o, o) for i, o in ups)
    official = down + up + conv(1, 32, 3, True, 3)
    assert official == 31_190_243
    assert count(lambda: UNet3D(1, 3, UNET3D["reference"].filters)) == (official, official)
