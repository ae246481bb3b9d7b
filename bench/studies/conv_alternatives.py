"""A study, concluded (docs/speed.md records the result): can the slowest convolutions of a step be had faster as plain matrix products? For each op that
bench/layers.py finds far below the matmul rate, the same arithmetic written as unfold/fold + one matmul, timed
side by side with oneDNN's kernel in the layout and dtype the step uses, and checked to give the same numbers.

    python bench/studies/conv_alternatives.py [--dtype fp32|bf16] [--threads N]

If the matmul form is no faster, the op's speed is what this CPU's matmul reaches for that shape (a skinny product),
not a poor kernel choice, and rewriting the layer would not help.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # bench/: layers, throughput
from layers import timed  # noqa: E402
from throughput import matmul_rate  # noqa: E402

STRIDE, PAD, K = 2, 1, 4  # every conv of the seed networks
backward = torch.ops.aten.convolution_backward


def summed_over_patches(per_pixel, image, weight_shape):
    """A weight gradient as one product: each output pixel's values (n, C, H*W) against the 4x4 patch of ``image``
    it came from (unfolded to (n, D*16, H*W)), summed over pixels and images, shaped as the weight."""
    n, channels = per_pixel.shape[:2]
    patches = F.unfold(image, K, padding=PAD, stride=STRIDE)
    return (per_pixel.reshape(n, channels, -1).transpose(0, 1).reshape(channels, -1)
            @ patches.transpose(1, 2).reshape(-1, patches.shape[1])).view(weight_shape)


def spread_over_patches(x, w, size):
    """A transposed convolution as one product: each pixel of ``x`` times the weight gives a 4x4 patch of the
    output per channel, and the overlapping patches are summed (fold) into an image of ``size``."""
    n, channels = x.shape[:2]
    patches = x.permute(0, 2, 3, 1).reshape(-1, channels) @ w.reshape(channels, -1)  # (n*H*W, out*16)
    return F.fold(patches.view(n, -1, patches.shape[1]).transpose(1, 2), size, K, padding=PAD, stride=STRIDE)


def weight_grad(x, grad, w, transposed):
    return lambda: backward(grad, x, w, None, (STRIDE,) * 2, (PAD,) * 2, (1, 1), transposed, (0, 0), 1,
                            [False, True, False])[1]


def input_grad(x, grad, w):
    return lambda: backward(grad, x, w, None, (STRIDE,) * 2, (PAD,) * 2, (1, 1), False, (0, 0), 1,
                            [True, False, False])[0]


def cases(dtype):
    """(name, MFLOP, oneDNN's op, the matmul form) for the ops layers.py found slowest."""
    cl = torch.channels_last

    def t(*shape):
        return torch.randn(*shape, dtype=dtype).contiguous(memory_format=cl)

    # D.conv4's weight gradient, at 128 images (one D pass over reals and fakes): a 256 x 512 @ 512 x 2048 product
    x, g, w = t(128, 128, 4, 4), t(128, 256, 2, 2), t(256, 128, 4, 4)

    yield ("D.conv4 weight grad (128 images)", 2 * w.numel() * 4 * 128, weight_grad(x, g, w, False),
           lambda: summed_over_patches(g, x, w.shape))

    # G.deconv1's weight gradient: the transposed conv's input against the unfolded output gradient
    x1, g1, w1 = t(64, 256, 2, 2), t(64, 128, 4, 4), t(256, 128, 4, 4)

    yield ("G.deconv1 weight grad", 2 * w1.numel() * 4 * 64, weight_grad(x1, g1, w1, True),
           lambda: summed_over_patches(x1, g1, w1.shape))

    # G.deconv1's forward: one product per input pixel, then the overlapping 4x4 patches summed (fold)
    yield ("G.deconv1 forward", 2 * w1.numel() * 4 * 64,
           lambda: F.conv_transpose2d(x1, w1, stride=STRIDE, padding=PAD), lambda: spread_over_patches(x1, w1, (4, 4)))

    # G.deconv4's forward (32 channels to 3): a product with only 48 outputs per pixel, then fold
    x4, w4 = t(64, 32, 16, 16), t(32, 3, 4, 4)
    yield ("G.deconv4 forward", 2 * w4.numel() * 256 * 64,
           lambda: F.conv_transpose2d(x4, w4, stride=STRIDE, padding=PAD),
           lambda: spread_over_patches(x4, w4, (32, 32)))

    # D.conv1's input gradient (the fakes' gradient, on its way to G): a transposed conv of the output gradient
    x0, g0, w0 = t(64, 3, 32, 32), t(64, 32, 16, 16), t(32, 3, 4, 4)
    yield ("D.conv1 input grad", 2 * w0.numel() * 256 * 64, input_grad(x0, g0, w0),
           lambda: spread_over_patches(g0, w0, (32, 32)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    rate = matmul_rate(dtype)
    print(f"{torch.get_num_threads()} threads, {args.dtype}, channels-last; matmul (best of 512^2-4096^2) "
          f"{rate / 1e9:.0f} GFLOP/s")
    print(f"{'op':<34}{'MFLOP':>7}{'oneDNN ms':>11}{'matmul ms':>11}{'oneDNN':>8}{'matmul':>8}{'max diff':>10}"
          "  (% of the matmul rate)")
    for name, flops, onednn, matmul in cases(dtype):
        reference, mine = onednn().float(), matmul().float()
        diff = ((reference - mine).abs().max() / reference.abs().max()).item()
        a, b = timed(onednn, 0.5), timed(matmul, 0.5)
        print(f"{name:<34}{flops / 1e6:>7.1f}{a * 1e3:>11.2f}{b * 1e3:>11.2f}{flops / a / rate:>8.0%}"
              f"{flops / b / rate:>8.0%}{diff:>10.1e}", flush=True)


if __name__ == "__main__":
    main()
