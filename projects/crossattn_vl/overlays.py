"""Attention-map overlays: where the model looks for a caption or a question.

Draws the image, the CBAM spatial gate M_s and the text->image cross-attention of the last
layer averaged over text tokens (reshaped to the region grid), each upsampled onto the image.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ensemblab.io import save_figure  # noqa: E402
from ensemblab.projects.crossattn_vl.data import load_image  # noqa: E402


def _upsample(grid: torch.Tensor, size: int) -> np.ndarray:
    grid = grid.float()[None, None]
    up = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    up = up - up.min()
    return (up / up.max().clamp_min(1e-8)).cpu().numpy()


@torch.no_grad()
def attention_overlay(net, text_inputs, image_path: str | Path, text: str, title: str,
                      out_path: str | Path, size: int, device="cpu") -> Path:
    """Write a 3-panel PNG (image, CBAM gate, text->image attention) for one image + text.

    ``text_inputs`` maps a list of texts to the text encoder's input (see
    :class:`~ensemblab.projects.crossattn_vl.features.TextInputs`).
    """
    x = load_image(image_path, size)[None].to(device)
    regions, gate = net.encode_image(x)
    h = w = math.isqrt(regions.shape[1])  # square images: an h x h region grid
    t = {k: v.to(device) for k, v in text_inputs([text]).items()}
    pad = t["pad"]
    _, _, _, attn = net.fuse(regions, net.encode_text(**t), pad)
    rgb = x[0].cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    panels = [("image", None)]
    if gate is not None:
        panels.append(("CBAM spatial gate", _upsample(gate[0, 0], size)))
    if attn.get("txt_to_img") is not None:
        keep = ~pad[0]
        weights = attn["txt_to_img"][0][keep].mean(dim=0).reshape(h, w)
        panels.append(("text->image attention", _upsample(weights, size)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, heat) in zip(axes[0], panels):
        ax.imshow(rgb)
        if heat is not None:
            ax.imshow(heat, cmap="jet", alpha=0.45)
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    out_path = Path(out_path)
    save_figure(fig, out_path)
    return out_path
