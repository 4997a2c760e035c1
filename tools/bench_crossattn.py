"""Benchmark of crossattn_vl on CPU: why the Flickr8k schedule caches frozen DenseNet maps.

Times, per batch, (a) the DenseNet121 trunk forward at the given image size, (b) one training
step of everything above it (CBAM, ALBERT, cross-attention, fusion, heads, backward) on cached
maps, and (c) the cross-attention block alone for growing text lengths; prints the ratios.

    python tools/bench_crossattn.py --size 128 --batch 16 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import torch

from ensemblab.multimodal.cross_attention import BidirectionalCrossAttention
from ensemblab.projects.crossattn_vl.cli import resolve_config
from ensemblab.projects.crossattn_vl.model import VLModule


def _time(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = resolve_config("flickr8k_cpu", ["tasks.vqa=false"])
    module = VLModule(cfg, vocab_size=1500, pad_id=0, bos_id=2, eos_id=3, features=True)
    images = torch.randn(args.batch, 3, args.size, args.size)
    enc = module.net.image_encoder.eval()
    t_backbone = _time(lambda: enc.backbone_features(images), args.repeats)
    maps = enc.backbone_features(images)
    ids = torch.randint(5, 1500, (args.batch, 16))
    ids[:, 0], ids[:, -1] = 2, 3
    batch = {"image": maps, "prompt_ids": ids[:, :2], "prompt_pad": ids[:, :2] == 0,
             "cap_ids": ids, "cap_pad": ids == 0,
             "same": torch.eye(args.batch, dtype=torch.bool)}
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], 1e-3)
    module.train()

    def step():
        opt.zero_grad()
        sum(module.losses(batch).values()).backward()
        opt.step()

    t_step = _time(step, args.repeats)
    print(f"DenseNet121 trunk, {args.batch} x {args.size}px: {1000 * t_backbone:.0f} ms/batch")
    print(f"train step on cached maps:          {1000 * t_step:.0f} ms/batch")
    print(f"ratio trunk / cached step: {t_backbone / t_step:.1f}x "
          f"(end-to-end fine-tuning would also back-propagate through the trunk)")
    attn = BidirectionalCrossAttention(128, 4, 2).eval()
    img = torch.randn(args.batch, (args.size // 32) ** 2, 128)
    base = None
    for length in (8, 16, 32, 64):
        txt = torch.randn(args.batch, length, 128)
        with torch.no_grad():
            t = _time(lambda txt=txt: attn(img, txt), args.repeats)
        base = base or t
        print(f"cross-attention, text length {length:3d}: {1000 * t:6.1f} ms ({t / base:.2f}x)")


if __name__ == "__main__":
    main()
