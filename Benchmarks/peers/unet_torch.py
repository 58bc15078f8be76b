#!/usr/bin/env python3
"""PyTorch peer of `scoresde-bench unet` (issue 20): the same U-Net, timed the same way.

The architecture is diffusers' UNet2DModel with the configuration of Benchmarks/UNet.swift
(`benchUNetConfiguration`): 1x28x28, block_out_channels (32, 64, 64), layers_per_block 1,
DownBlock2D, DownBlock2D, AttnDownBlock2D / AttnUpBlock2D, UpBlock2D, UpBlock2D, mid-block
attention, 8 groups, one attention head (attention_head_dim None), positional time embedding.
ScoreSDE names its parameters as this model does, so the parameter counts must agree.

Measures, like the Swift benchmark: forward images/s at batch 256 (inference, no_grad), training
images/s at batch 128 (forward, epsilon-prediction MSE, backward, Adam), and the peak RSS after
training (VmHWM) minus the RSS after the model is built, so torch's import does not count.

Not run by CI. Set up with:  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch diffusers
Run:  /tmp/torchenv/bin/python Benchmarks/peers/unet_torch.py [--json] [--threads N] [--steps N] [--compile]
"""
import argparse
import json
import math
import time

import torch
from diffusers import UNet2DModel


def rss_mib():
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def build():
    return UNet2DModel(
        sample_size=28, in_channels=1, out_channels=1,
        block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        add_attention=True, attention_head_dim=None, norm_num_groups=8, norm_eps=1e-5,
        flip_sin_to_cos=True, freq_shift=0, dropout=0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--threads", type=int, action="append")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (reported separately)")
    args = ap.parse_args()
    torch.manual_seed(1)
    model = build()
    base, _ = rss_mib()
    n_params = sum(p.numel() for p in model.parameters())
    S, infer_batch, train_batch = 28, 256, 128
    x0 = torch.rand(infer_batch, 1, S, S) * 2 - 1
    eps = torch.randn(train_batch, 1, S, S)
    tau_infer = torch.arange(infer_batch, dtype=torch.float32) % 1000
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    run = torch.compile(model) if args.compile else model

    def train_step(k):
        t = ((torch.arange(train_batch) * 37 + k * 11) % 1000).float() / 1000 + 1e-3
        log_mean = -0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1
        a, s = torch.exp(log_mean), torch.sqrt(1 - torch.exp(2 * log_mean))
        xt = a.view(-1, 1, 1, 1) * x0[:train_batch] + s.view(-1, 1, 1, 1) * eps
        opt.zero_grad(set_to_none=False)
        y = run(xt, 999 * t).sample
        loss = torch.mean((y - eps) ** 2)
        loss.backward()
        opt.step()

    for threads in args.threads or [1, 2]:
        torch.set_num_threads(threads)
        # Training first (batch 128): the peak RSS read after it is the training peak.
        train_step(0)
        best_train = math.inf
        for k in range(1, args.steps + 1):
            t0 = time.perf_counter(); train_step(k); best_train = min(best_train, time.perf_counter() - t0)
        train = train_batch / best_train
        peak = rss_mib()[1] - base
        with torch.no_grad():
            run(x0, tau_infer)
        best = math.inf
        with torch.no_grad():
            for _ in range(max(2, args.steps // 3)):
                t0 = time.perf_counter(); run(x0, tau_infer); best = min(best, time.perf_counter() - t0)
        infer = infer_batch / best
        out = {"framework": "pytorch" + ("+compile" if args.compile else ""), "train_images_per_s": round(train, 1),
               "infer_images_per_s": round(infer, 1), "peak_rss_mb": round(peak, 1), "parameters": n_params,
               "threads": threads, "torch": torch.__version__}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"threads {threads}: inference {infer:.0f} images/s (batch {infer_batch}), training {train:.0f} images/s "
                  f"(batch {train_batch}, forward+backward+Adam), training peak RSS - model RSS {peak:.0f} MiB, {n_params} parameters")


if __name__ == "__main__":
    main()
