"""Models: ResNet encoders (torchvision keys) + U-Net decoder, built by one factory."""
from .build import build_model, model_from_config
from .fold import fold_batch_norm
from .resnet import ResNetEncoder
from .unet import UNet
from .weights import load_encoder_weights

__all__ = ["build_model", "fold_batch_norm", "model_from_config", "ResNetEncoder", "UNet", "load_encoder_weights"]
