"""facegan: a small, fast, tested DCGAN for faces. See README.md."""
from .config import TrainConfig
from .data import DataError, get_dataloader, load_images
from .models import Discriminator, Generator, build_network, fake_loss, real_loss, weights_init_normal
from .train import RunResult, Trainer, TrainingError, train

__all__ = ["TrainConfig", "DataError", "get_dataloader", "load_images", "Discriminator", "Generator",
           "build_network", "fake_loss", "real_loss", "weights_init_normal", "RunResult", "Trainer",
           "TrainingError", "train"]
__version__ = "0.1.0"
