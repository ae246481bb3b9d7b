import pytest
import torch
from torch import nn

from facegan.models import (Discriminator, Generator, build_network, discriminator_loss, fake_loss, generator_loss,
                            real_loss, sample_latent, weights_init_normal)

SEED4_PRINT = """\
Discriminator(
  (conv1): Sequential(
    (0): Conv2d(3, 32, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
  )
  (conv2): Sequential(
    (0): Conv2d(32, 64, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
    (1): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (conv3): Sequential(
    (0): Conv2d(64, 128, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
    (1): BatchNorm2d(128, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (conv4): Sequential(
    (0): Conv2d(128, 256, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
    (1): BatchNorm2d(256, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (fc): Linear(in_features=1024, out_features=1, bias=True)
)
Generator(
  (fc): Linear(in_features=100, out_features=1024, bias=True)
  (deconv1): Sequential(
    (0): ConvTranspose2d(256, 128, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
    (1): BatchNorm2d(128, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (deconv2): Sequential(
    (0): ConvTranspose2d(128, 64, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
    (1): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (deconv3): Sequential(
    (0): ConvTranspose2d(64, 32, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
    (1): BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
  )
  (deconv4): Sequential(
    (0): ConvTranspose2d(32, 3, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)
  )
)"""


def printed(*modules):
    """print() text, with the one accepted difference of recent torch (BatchNorm's extra 'bias=True') undone."""
    return "\n".join(str(m) for m in modules).replace("affine=True, bias=True, track", "affine=True, track")


def test_seed4_prints_exactly_the_seed_text():
    assert printed(Discriminator(32), Generator(100, 32)) == SEED4_PRINT


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_seed3_layers_shapes_and_bias_flags():
    D, G = Discriminator(32, arch="seed3"), Generator(100, 32, arch="seed3")
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.bias is None) for c in convs] == [(3, 32, True), (32, 64, True),
                                                                              (64, 128, True)]
    assert [m.num_features for m in D.modules() if isinstance(m, nn.BatchNorm2d)] == [64, 128]
    assert (D.fc.in_features, D.fc.out_features) == (2048, 1)
    deconvs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.bias is not None) for c in deconvs] == [(128, 64, True),
                                                                                    (64, 32, True), (32, 3, True)]
    assert [m.num_features for m in G.modules() if isinstance(m, nn.BatchNorm2d)] == [64, 32]
    assert (G.fc.in_features, G.fc.out_features) == (100, 2048)
    # parameter counts of the seed-001 networks, layer by layer
    assert count(D) == 3 * 32 * 16 + 32 * 64 * 16 + 2 * 64 + 64 * 128 * 16 + 2 * 128 + 2048 + 1
    assert count(G) == 100 * 2048 + 2048 + 128 * 64 * 16 + 64 + 2 * 64 + 64 * 32 * 16 + 32 + 2 * 32 + 32 * 3 * 16 + 3


@pytest.mark.parametrize("arch", ["seed4", "seed3"])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_ranges(arch, size):
    D, G = build_network(16, 16, 20, arch=arch, image_size=size)
    z = sample_latent(6, 20)
    images = G(z)
    assert images.shape == (6, 3, size, size)
    assert images.abs().max() <= 1
    logits = D(images)
    assert logits.shape == (6, 1)


def test_64_adds_one_stride2_stage():
    assert Discriminator(32, image_size=64).n_convs == Discriminator(32).n_convs + 1
    assert Generator(100, 32, image_size=64).n_deconvs == 5
    assert Discriminator(32, image_size=64).conv5[0].out_channels == 512


def test_udacity_grader_calls():
    assert Discriminator(10)(torch.rand(50, 3, 32, 32) * 2 - 1).shape == (50, 1)
    assert Generator(25, 10)(torch.rand(50, 25) * 2 - 1).shape == (50, 3, 32, 32)


def test_discriminator_returns_unbounded_logits():
    D = Discriminator(8)
    D.fc.bias.data.fill_(5.0)
    assert (D(torch.rand(4, 3, 32, 32)) > 1).all()


def test_unsupported_image_size_and_arch():
    with pytest.raises(ValueError, match="image size 48"):
        Discriminator(8, image_size=48)
    with pytest.raises(ValueError, match="unknown arch"):
        Generator(10, 8, arch="resnet")


def test_weights_init_normal_statistics():
    torch.manual_seed(0)
    D, G = Discriminator(64), Generator(100, 64)
    for net in (D, G):
        net.apply(weights_init_normal)
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.weight.numel() > 1000:
                assert abs(m.weight.mean().item()) < 0.002
                assert abs(m.weight.std().item() - 0.02) < 0.001
                assert m.bias is None or (m.bias == 0).all()
            if isinstance(m, nn.BatchNorm2d):
                assert (m.weight == 1).all() and (m.bias == 0).all()


def test_losses_targets_and_smoothing():
    logits = torch.tensor([[0.3], [-1.2], [2.0]])
    bce = nn.BCEWithLogitsLoss()
    assert torch.isclose(real_loss(logits), bce(logits.squeeze(), torch.ones(3)))
    assert torch.isclose(real_loss(logits, smooth=True), bce(logits.squeeze(), torch.full((3,), 0.9)))
    assert torch.isclose(real_loss(logits, 0.8), bce(logits.squeeze(), torch.full((3,), 0.8)))
    assert torch.isclose(fake_loss(logits), bce(logits.squeeze(), torch.zeros(3)))
    assert real_loss(torch.tensor([[10.0]])) < 1e-3 and fake_loss(torch.tensor([[-10.0]])) < 1e-3


def test_discriminator_and_generator_losses():
    real, fake = torch.tensor([[0.3], [-1.2], [2.0]]), torch.tensor([[-0.5], [1.5], [-3.0]])
    assert torch.isclose(discriminator_loss(real, fake, "bce", 0.9), real_loss(real, 0.9) + fake_loss(fake))
    assert torch.isclose(generator_loss(fake, "bce"), real_loss(fake))
    # hinge: only logits inside the margin count: (0.7 + 2.2 + 0) / 3 + (0.5 + 2.5 + 0) / 3
    assert torch.isclose(discriminator_loss(real, fake, "hinge"), torch.tensor((0.7 + 2.2) / 3 + 3.0 / 3))
    assert torch.isclose(generator_loss(fake, "hinge"), torch.tensor(2.0 / 3))
    with pytest.raises(ValueError, match="unknown loss"):
        discriminator_loss(real, fake, "wasserstein")
    with pytest.raises(ValueError, match="unknown loss"):
        generator_loss(fake, "wasserstein")


def test_latents():
    g = torch.Generator().manual_seed(0)
    u = sample_latent(1000, 10, "uniform", generator=g)
    assert u.min() >= -1 and u.max() <= 1 and u.mean().abs() < 0.05
    n = sample_latent(1000, 10, "normal", generator=g)
    assert abs(n.std().item() - 1) < 0.05
    with pytest.raises(ValueError):
        sample_latent(2, 2, "cauchy")


def test_spectral_discriminator_holds_each_layer_at_unit_norm():
    torch.manual_seed(0)
    D, _ = build_network(16, 16, 10, d_norm="spectral")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    layers = [D.conv1[0], D.conv2[0], D.conv3[0], D.conv4[0], D.fc]
    for layer in layers:  # initialised like the seed: the stored weights are N(0, 0.02), biases 0
        original = layer.parametrizations.weight.original
        assert abs(original.std().item() - 0.02) < 0.004 and (layer.bias == 0).all()
    for _ in range(30):  # the power iteration advances once per training-mode forward
        D(torch.rand(4, 3, 32, 32) * 2 - 1)
    for layer in layers:
        top = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
        assert abs(top - 1) < 0.05, top
    assert D(torch.rand(4, 3, 32, 32)).shape == (4, 1)
    with pytest.raises(ValueError, match="unknown discriminator norm"):
        Discriminator(8, norm="layer")


@pytest.mark.parametrize("arch", ["seed4", "seed3"])
def test_one_pass_over_two_batches_equals_two_passes(arch):
    """parts=2 stacks the reals and the fakes for the convs but normalises each batch apart, in the same order: the
    logits, the gradients and BatchNorm's running statistics are those of two separate passes."""
    torch.manual_seed(0)
    one, two = Discriminator(8, arch=arch), Discriminator(8, arch=arch)
    two.load_state_dict(one.state_dict())
    real, fake = torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32) * 0.5 + 0.3
    together = one(torch.cat([real, fake]), parts=2)
    apart = torch.cat([two(real), two(fake)])
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-5)
    together.square().sum().backward()
    apart.square().sum().backward()
    for (name, a), b in zip(one.named_parameters(), two.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, a), b in zip(one.named_buffers(), two.buffers()):
        torch.testing.assert_close(a, b, msg=name)
    # the stacked batch normalised as one would be a different network: the test above can tell
    mixed = two(torch.cat([real, fake]))
    assert not torch.allclose(mixed, apart, atol=1e-3)
