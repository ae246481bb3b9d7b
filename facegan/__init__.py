"""facegan: a small, fast, tested DCGAN for faces. See README.md.

The names below are the package's public API. None of them shadows a submodule: ``facegan.train`` is the training
module (its ``train`` function is ``facegan.train.train``), ``facegan.data`` the data module, and so on.
"""
from .batches import get_dataloader
from .config import TrainConfig
from .data import load_images
from .errors import DataError, TrainingError
from .models import Discriminator, Generator, build_network, fake_loss, real_loss, weights_init_normal
from .train import RunResult, Trainer

__all__ = ["TrainConfig", "DataError", "get_dataloader", "load_images", "Discriminator", "Generator",
           "build_network", "fake_loss", "real_loss", "weights_init_normal", "RunResult", "Trainer",
           "TrainingError"]
__version__ = "0.1.0"
