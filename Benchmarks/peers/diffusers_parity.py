#!/usr/bin/env python3
"""Parity fixtures for ScoreSDE's diffusers UNet2DModel loader and writer (issue 23).

Run by hand (PyTorch + diffusers from PyPI; never by the package or CI):

    python Benchmarks/peers/diffusers_parity.py fixtures        # writes Tests/Fixtures/diffusers/*
    python Benchmarks/peers/diffusers_parity.py check DIR       # DIR written by our writer (see the test
                                                                # DiffusersTests.writerFolderForDiffusers)
    python Benchmarks/peers/diffusers_parity.py trained         # tiny model trained 2 min + diffusers' DDIM
    python Benchmarks/peers/diffusers_parity.py speed DIR       # 35.7 M-parameter 32×32 model: PyTorch's
                                                                # time; then scoresde-bench diffusers DIR

`fixtures` builds small random UNet2DModels (every parameter perturbed, so a wrong name or layout
shows), saves each as a diffusers folder (config.json + diffusion_pytorch_model.safetensors, F32)
and writes `parity.safetensors` beside it: inputs `x` [B, C, S, S], `timesteps` [K], optional
`labels` [B], and the outputs `out` [K, B, C, S, S] of `model(x, timesteps[k], class_labels)`.

`check DIR` loads DIR/unet with `UNet2DModel.from_pretrained` and compares its output with the one
our test stored in DIR/expected.safetensors (`x`, `timesteps`, optional `labels`, `out`).
"""
import os
import sys

import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "Tests", "Fixtures", "diffusers")

CONFIGS = {
    # no attention anywhere, flip_sin_to_cos True, freq_shift 0 (diffusers' defaults)
    "plain": dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                  down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                  add_attention=False, norm_num_groups=4, attention_head_dim=None,
                  flip_sin_to_cos=True, freq_shift=0),
    # the DDPM checkpoints' options: flip False, freq_shift 1, attention at one level and in the middle, eps 1e-6
    "attention": dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=2,
                      down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                      add_attention=True, norm_num_groups=4, norm_eps=1e-6, attention_head_dim=None,
                      flip_sin_to_cos=False, freq_shift=1),
    # class-conditional (num_class_embeds 4), three levels, attention_head_dim given = channels (one head)
    "classes": dict(sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16, 16), layers_per_block=1,
                    down_block_types=("AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D"),
                    add_attention=False, norm_num_groups=2, attention_head_dim=8, num_class_embeds=4,
                    flip_sin_to_cos=True, freq_shift=1),
    # flip False, freq_shift 0, center_input_sample
    "centered": dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
                     down_block_types=("AttnDownBlock2D", "AttnDownBlock2D"),
                     up_block_types=("AttnUpBlock2D", "AttnUpBlock2D"),
                     add_attention=True, norm_num_groups=4, attention_head_dim=None,
                     flip_sin_to_cos=False, freq_shift=0, center_input_sample=True),
    # several heads: attention_head_dim 4 on 8 and 16 channels (2 and 4 heads; diffusers' default is 8)
    "heads": dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                  down_block_types=("AttnDownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "AttnUpBlock2D"),
                  add_attention=True, norm_num_groups=4, attention_head_dim=4, flip_sin_to_cos=True, freq_shift=0),
    # the published DDPM checkpoints' layout (google/ddpm-cifar10-32): downsample_padding 0, flip False,
    # freq_shift 1, eps 1e-6, attention at the second level and in the middle, one head
    "ddpm": dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 8, 8), layers_per_block=2,
                 down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), downsample_padding=0,
                 add_attention=True, norm_num_groups=4, norm_eps=1e-6, attention_head_dim=None,
                 flip_sin_to_cos=False, freq_shift=1),
}
TIMESTEPS = [0.0, 17.0, 500.0, 999.0]


def fixtures():
    total = 0
    for name, cfg in CONFIGS.items():
        torch.manual_seed(sorted(CONFIGS).index(name))
        model = UNet2DModel(**cfg).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        folder = os.path.join(FIXTURES, name)
        model.save_pretrained(folder, safe_serialization=True)
        B = 2
        x = torch.randn(B, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"])
        labels = torch.tensor([1, cfg["num_class_embeds"] - 1]) if "num_class_embeds" in cfg else None
        outs = []
        with torch.no_grad():
            for t in TIMESTEPS:
                outs.append(model(x, torch.tensor(t), class_labels=labels).sample)
        tensors = {"x": x.contiguous(), "timesteps": torch.tensor(TIMESTEPS), "out": torch.stack(outs).contiguous()}
        if labels is not None:
            tensors["labels"] = labels.to(torch.float32)
        save_file(tensors, os.path.join(folder, "parity.safetensors"))
        if name == "centered":   # a scheduler config beside config.json: cosine betas, v-prediction
            DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction").save_config(folder)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        total += size
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, {size} bytes")
    print(f"total {total} bytes in {os.path.normpath(FIXTURES)}")


def trained(seconds=120.0, max_steps=3000):
    """Trains a tiny UNet2DModel (8×8 grey rectangles in [−1, 1]) for `seconds` (at most `max_steps`) with diffusers' recipe
    (DDPMScheduler.add_noise, ε-MSE, AdamW), then samples with diffusers' DDIMScheduler (10 steps,
    η = 0, clip_sample off) from fixed latents; writes the pipeline folder and `ddim.safetensors`
    (`latents`, `timesteps`, `samples`) to Tests/Fixtures/diffusers/trained."""
    import time
    from diffusers import DDIMScheduler, DDPMPipeline
    torch.manual_seed(7)
    torch.set_num_threads(1)   # one thread: OpenMP barriers of 2 threads stall on a loaded 2-core machine
    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                        norm_num_groups=4, attention_head_dim=8)
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def batch(n):
        x = -torch.ones(n, 1, 8, 8)
        for i in range(n):
            a, b = sorted(torch.randint(0, 9, (2,)).tolist()); c, d = sorted(torch.randint(0, 9, (2,)).tolist())
            x[i, 0, a:max(b, a + 2), c:max(d, c + 2)] = 1
        return x

    start, steps, loss = time.time(), 0, float("nan")
    model.train()
    while time.time() - start < seconds and steps < max_steps:
        x0 = batch(64)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (64,))
        loss = torch.nn.functional.mse_loss(model(sched.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad(); loss.backward(); opt.step(); steps += 1
    model.eval()
    print(f"trained {steps} steps in {time.time() - start:.0f} s, last loss {loss.item():.4f}")
    folder = os.path.join(FIXTURES, "trained")
    DDPMPipeline(unet=model, scheduler=sched).save_pretrained(folder, safe_serialization=True)
    ddim = DDIMScheduler.from_config(sched.config, clip_sample=False, set_alpha_to_one=True)
    ddim.set_timesteps(10)
    latents = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    x = latents.clone()
    with torch.no_grad():
        for t in ddim.timesteps:
            x = ddim.step(model(x, t).sample, t, x, eta=0.0).prev_sample
    save_file({"latents": latents, "timesteps": ddim.timesteps.to(torch.float32), "samples": x.contiguous()},
              os.path.join(folder, "ddim.safetensors"))
    print("DDIM timesteps", ddim.timesteps.tolist(), "sample range", x.min().item(), x.max().item())


def speed(folder, batch=8, repeats=5):
    """The DDPM CIFAR-10 U-Net's shape (35.7 M parameters, 32×32, channels 128/256/256/256, attention
    at 16×16 and in the middle) with downsample_padding 1, saved to `folder`; prints PyTorch's best
    time per image per NFE at 2 threads (compare: scoresde-bench diffusers FOLDER)."""
    import time
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
                        layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None,
                        norm_eps=1e-6, flip_sin_to_cos=False, freq_shift=1).eval()
    model.save_pretrained(folder, safe_serialization=True)
    x = torch.randn(batch, 3, 32, 32)
    best = float("inf")
    with torch.no_grad():
        model(x, torch.tensor(500.0))
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x, torch.tensor(500.0))
            best = min(best, time.perf_counter() - t0)
    n = sum(p.numel() for p in model.parameters())
    print(f'{{"framework": "pytorch {torch.__version__}", "parameters": {n}, "batch": {batch}, "threads": 2, '
          f'"seconds_per_image_per_nfe": {best / batch:.4f}}}')


def check(folder):
    model = UNet2DModel.from_pretrained(folder, subfolder="unet").eval()
    e = load_file(os.path.join(folder, "expected.safetensors"))
    labels = e["labels"].to(torch.long) if "labels" in e else None
    worst = 0.0
    with torch.no_grad():
        for k, t in enumerate(e["timesteps"].tolist()):
            out = model(e["x"], torch.tensor(t), class_labels=labels).sample
            ref = e["out"][k]
            rel = ((out - ref).abs().max() / ref.abs().max()).item()
            worst = max(worst, rel)
            print(f"t = {t:g}: max |diffusers − ours| / max |ours| = {rel:.2e}")
    print(f"worst relative error {worst:.2e}: {'OK' if worst < 1e-4 else 'MISMATCH'}")
    return worst < 1e-4


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "fixtures":
        fixtures()
    elif len(sys.argv) >= 2 and sys.argv[1] == "trained":
        trained()
    elif len(sys.argv) >= 3 and sys.argv[1] == "speed":
        speed(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2]) else 1)
    else:
        print(__doc__)
        sys.exit(2)
