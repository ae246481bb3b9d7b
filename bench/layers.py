"""Where a training step's time goes, layer by layer: every convolution and transposed convolution of the seed-000
networks at 32x32, forward, backward to the input and backward to the weights, timed alone in each layout (NCHW,
channels-last) and dtype (fp32, bf16), with the rate each reaches against this machine's matmul rate.

    python bench/layers.py [--batch-size 64] [--threads N]

Each op runs through ``aten::convolution`` / ``aten::convolution_backward`` (with an output mask, so the input and
weight gradients are timed apart), the calls a training step makes. A step runs each D conv three times forward
(real, fake, and fake again for G's loss) and G's once; this table times one call of each. (With one D pass, the
default, real and fake are one call of twice the batch; the per-step totals count it as two calls of one batch.)

It then accounts for the rest of a step: facegan's default step timed whole, against the sum of its convolutions (in
the step's own layout and precision), BatchNorm with the activation after it, Adam, and (in bf16) the weight casts
autocast makes every step. What is left is losses, concatenation, the moving average and autograd's bookkeeping.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from throughput import matmul_rate  # noqa: E402

from facegan.config import TrainConfig  # noqa: E402
from facegan.models import Discriminator, Generator, build_network  # noqa: E402
from facegan.precision import training_precision  # noqa: E402
from facegan.train import Trainer  # noqa: E402


# (forward, input-gradient, weight-gradient) calls per training step. D runs on the real and the fake batch in its
# step (weight gradients for both, input gradients inside D only, the images need none) and on the fakes again in
# G's step (input gradients all the way down to G, no weight gradients); G runs once.
CALLS_PER_STEP = {"D.conv1": (3, 1, 2), "D": (3, 3, 2), "G": (1, 1, 1)}


def timed(fn, seconds: float = 0.3) -> float:
    for _ in range(3):
        fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return (time.perf_counter() - start) / count


def conv_layers(batch: int):
    """(name, input shape, conv module, transposed) for every conv of D and G, with the shape it sees."""
    D, G = Discriminator(32), Generator(100, 32)
    layers, x = [], torch.zeros(batch, 3, 32, 32)
    for i in range(D.n_convs):
        conv = getattr(D, f"conv{i + 1}")[0]
        layers.append((f"D.conv{i + 1}", tuple(x.shape), conv, False))
        x = conv(x)
    channels, side = G.bottleneck
    x = torch.zeros(batch, channels, side, side)
    for i in range(G.n_deconvs):
        conv = getattr(G, f"deconv{i + 1}")[0]
        layers.append((f"G.deconv{i + 1}", tuple(x.shape), conv, True))
        x = conv(x)
    return layers


def norm_activation_seconds(batch: int, dtype: torch.dtype) -> float:
    """BatchNorm and the activation after it, forward and backward, channels-last, as often as a step runs each:
    D's three times (real, fake, fakes again in G's step; D.conv1 has the activation only), G's once."""
    D, G = build_network()
    total, x = 0.0, torch.zeros(batch, 3, 32, 32)
    for i in range(D.n_convs):
        conv, *norm = getattr(D, f"conv{i + 1}")
        x = conv(x).detach()
        total += 3 * _norm_activation_time(norm[0] if norm else None, lambda y: torch.nn.functional.leaky_relu(y, 0.2),
                                           x, dtype)
    channels, side = G.bottleneck
    x = torch.zeros(batch, channels, side, side)
    for i in range(G.n_deconvs - 1):
        deconv, norm = getattr(G, f"deconv{i + 1}")
        x = deconv(x).detach()
        total += _norm_activation_time(norm, torch.relu, x, dtype)
    return total


def _norm_activation_time(norm, activation, x: torch.Tensor, dtype: torch.dtype) -> float:
    x = torch.randn_like(x).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    grad = torch.randn_like(x)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        return timed(lambda: activation(norm(x) if norm else x).backward(grad))


def adam_seconds() -> float:
    """Both fused Adam steps of a training step."""
    D, G = build_network()
    optimizers = [torch.optim.Adam(net.parameters(), lr=1e-4, fused=True) for net in (D, G)]
    for net in (D, G):
        for p in net.parameters():
            p.grad = torch.randn_like(p)
    return timed(lambda: [optimizer.step() for optimizer in optimizers])


def weight_cast_seconds() -> float:
    """The casts bf16 autocast makes of the weights each step: G's once and D's twice (its step, then G's) on the
    way in, and the weight gradients of both back to fp32 on the way out."""
    D, G = build_network()
    g, d = ([p.detach() for p in net.parameters() if p.dim() > 1] for net in (G, D))
    return timed(lambda: [p.to(torch.bfloat16) for p in g + d + d] + [p.to(torch.bfloat16).float() for p in g + d])


def step_seconds(batch: int, seconds: float = 5.0) -> tuple[float, str]:
    """facegan's default step (train_step, with the moving average) on a random batch, and its precision."""
    config = TrainConfig(data="synthetic", batch_size=batch, threads=str(torch.get_num_threads()))
    trainer = Trainer(config, images=torch.zeros(batch, 3, 32, 32, dtype=torch.uint8), progress=False, write=False)
    real = (torch.rand(batch, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    return timed(lambda: trainer.train_step(real), seconds), training_precision(config.precision, trainer.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rates = {torch.float32: matmul_rate(torch.float32), torch.bfloat16: matmul_rate(torch.bfloat16)}
    # the limit is the faster dtype's rate: bf16 on CPUs with bf16 units, fp32 where bf16 is emulated
    peak_dtype = max(rates, key=rates.get)
    peak_name = "bf16" if peak_dtype == torch.bfloat16 else "fp32"
    print(f"{torch.get_num_threads()} threads, batch {args.batch_size}; matmul (best of 512^2-4096^2): "
          f"fp32 {rates[torch.float32] / 1e9:.0f} GFLOP/s, bf16 {rates[torch.bfloat16] / 1e9:.0f} GFLOP/s")
    print(f"{'layer':<11}{'input':>18}{'layout':>8}{'dtype':>6}{'MFLOP':>8}"
          f"{'fwd ms':>9}{'bwd-in ms':>11}{'bwd-w ms':>10}{'fwd':>6}{'bwd-in':>8}{'bwd-w':>7}"
          "  (% of its dtype's matmul rate)")
    totals = {}
    for name, shape, conv, transposed in conv_layers(args.batch_size):
        for layout in (torch.contiguous_format, torch.channels_last):
            for dtype in (torch.float32, torch.bfloat16):
                x = torch.randn(shape).to(dtype).contiguous(memory_format=layout)
                w = conv.weight.detach().to(dtype).contiguous(memory_format=layout)

                def forward():
                    return torch.ops.aten.convolution(x, w, None, conv.stride, conv.padding, conv.dilation,
                                                      transposed, conv.output_padding, 1)
                y = forward()
                grad = torch.randn_like(y).contiguous(memory_format=layout)

                def backward(mask):
                    return lambda: torch.ops.aten.convolution_backward(
                        grad, x, w, None, conv.stride, conv.padding, conv.dilation, transposed, conv.output_padding,
                        1, mask)
                # one multiply-add per weight per output position of the non-transposed direction
                positions = (x if transposed else y).shape[2] * (x if transposed else y).shape[3]
                flops = 2 * w.numel() * positions * args.batch_size
                times = [timed(forward), timed(backward([True, False, False])),
                         timed(backward([False, True, False]))]
                share = [flops / t / rates[dtype] for t in times]
                label = "NHWC" if layout == torch.channels_last else "NCHW"
                dtype_name = "bf16" if dtype == torch.bfloat16 else "fp32"
                print(f"{name:<11}{str(shape):>18}{label:>8}{dtype_name:>6}{flops / 1e6:>8.1f}"
                      f"{times[0] * 1e3:>9.3f}{times[1] * 1e3:>11.3f}{times[2] * 1e3:>10.3f}"
                      + "".join(f"{s:>7.0%}" for s in share), flush=True)
                calls = CALLS_PER_STEP["D.conv1" if name == "D.conv1" else name[0]]
                total = totals.setdefault((label, dtype_name), [0.0, 0.0, 0.0, 0.0])
                total[0] += flops * sum(calls)
                for i in range(3):
                    total[1 + i] += times[i] * calls[i]
    print("\nper training step, with the calls a facegan step makes (CALLS_PER_STEP):")
    for (layout, dtype), (flops, fwd, bwd_in, bwd_w) in totals.items():
        seconds = fwd + bwd_in + bwd_w
        print(f"  {layout} {dtype}: convs {seconds * 1e3:.1f} ms per step of {args.batch_size} "
              f"({flops / seconds / 1e9:.0f} GFLOP/s, {flops / seconds / rates[peak_dtype]:.0%} of the {peak_name} "
              "matmul rate, this machine's fastest) "
              f"= {args.batch_size / seconds:,.0f} images/s if the convs were all; fwd {fwd * 1e3:.1f}, bwd-in "
              f"{bwd_in * 1e3:.1f}, bwd-w {bwd_w * 1e3:.1f} ms")

    step, precision = step_seconds(args.batch_size)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    parts = {"convolutions": sum(totals[("NHWC", precision)][1:]),
             "BatchNorm + activation": norm_activation_seconds(args.batch_size, dtype),
             "Adam (fused, both networks)": adam_seconds(),
             "weight casts (bf16 autocast)": weight_cast_seconds() if precision == "bf16" else 0.0}
    print(f"\nfacegan's default step ({precision}, channels-last, batch {args.batch_size}): {step * 1e3:.1f} ms "
          f"= {args.batch_size / step:,.0f} images/s")
    parts["the rest (losses, cat, EMA, autograd)"] = step - sum(parts.values())
    for name, seconds in parts.items():
        print(f"  {name:<40}{seconds * 1e3:>8.1f} ms  {seconds / step:>4.0%}")


if __name__ == "__main__":
    main()
