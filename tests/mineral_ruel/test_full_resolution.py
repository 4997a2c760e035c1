"""Full-resolution prediction: blended tiles reproduce the untiled network, bilinear strips
reproduce ``F.interpolate``."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ensemblab.projects.mineral_ruel.data import to_tensor
from ensemblab.projects.mineral_ruel.inference import tiled_probabilities, upsampled_argmax


class PixelNet(nn.Module):
    """A per-pixel classifier (1x1 convs): its tiled output must equal the untiled one exactly,
    so any difference is a stitching error (offsets, blend weights, padding crop)."""

    def __init__(self, classes: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Tanh(), nn.Conv2d(16, classes, 1))

    def forward(self, x):
        return self.body(x) * 4


@pytest.mark.parametrize("size,tile,overlap", [((100, 150), 32, 8), ((70, 45), 64, 16),
                                               ((96, 96), 32, 31)])
def test_blended_tiles_of_a_pixel_net_equal_the_untiled_net(size, tile, overlap):
    image = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    net = PixelNet().eval()
    with torch.no_grad():
        whole = net(to_tensor(image)[None]).softmax(1)[0].numpy()
    tiled = tiled_probabilities(net, image, tile, overlap, batch_size=3)
    assert tiled.shape == whole.shape == (5, *size)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)  # float32 weighted mean


@pytest.mark.parametrize("src,dst,rows", [((7, 9), (30, 41), 4), ((12, 10), (12, 33), 5),
                                          ((5, 5), (23, 17), 256)])
def test_strip_wise_bilinear_argmax_equals_interpolate(src, dst, rows):
    probs = torch.rand(4, *src, generator=torch.Generator().manual_seed(2))
    reference = F.interpolate(probs[None], size=dst, mode="bilinear",
                              align_corners=False)[0].argmax(0).numpy()
    out = upsampled_argmax(probs.numpy(), dst, rows=rows)
    assert out.dtype == np.uint8 and out.shape == dst
    assert np.array_equal(out, reference)


def test_upsampled_argmax_of_smooth_regions_uses_the_corner_shortcut_correctly():
    low = torch.rand(6, 9, 12, generator=torch.Generator().manual_seed(3)) * 8
    probs = F.interpolate(low[None], size=(60, 80), mode="bilinear")[0].softmax(0)
    reference = F.interpolate(probs[None], size=(333, 451), mode="bilinear",
                              align_corners=False)[0].argmax(0).numpy()
    out = upsampled_argmax(probs.numpy(), (333, 451), rows=50)
    assert len(np.unique(out)) >= 4  # several regions, so both paths run
    assert (out == reference).mean() > 0.9999
