"""Graders for dlnd_face_generation.ipynb, compatible with the Udacity originals.

Each ``test_*`` checks one step of the notebook on your implementation. It prints ``Tests Passed`` when the step
is right, and otherwise raises AssertionError saying what was expected, what was found, and what to check.

The graders accept every solution the course allows (label smoothing on or off, cross-entropy or least-squares
losses, biases zeroed or left alone, BatchNorm at PyTorch's defaults, ``train_on_gpu``-style device handling) and
look for the bugs that actually break a GAN. An exception raised by your code never escapes as a bare traceback:
it comes back as a grader message naming what was called and what to check.

The graders live in the facegan package, one module per part of the notebook (``facegan/graders/``); this file keeps
the Udacity project's name and calls: ``import problem_unittests as tests``, then ``tests.test_discriminator(
Discriminator)`` and so on.
"""
from facegan.graders.common import GraderFailure
from facegan.graders.data import test_dataloader, test_get_dataloader, test_scale
from facegan.graders.networks import test_discriminator, test_generator, test_weights_init
from facegan.graders.training import (UPDATES_TO_JUDGE_COLLAPSE, test_build_optimizers, test_losses, test_optimizers,
                                      test_train_step, test_training_output)

__all__ = ["GraderFailure", "UPDATES_TO_JUDGE_COLLAPSE", "test_dataloader", "test_get_dataloader", "test_scale",
           "test_discriminator", "test_generator", "test_weights_init", "test_losses", "test_optimizers",
           "test_build_optimizers", "test_train_step", "test_training_output"]
