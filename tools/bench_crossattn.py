"""Benchmark of crossattn_vl on CPU: why the Flickr8k schedule caches frozen encoder outputs.

Times in CPU seconds, per batch of the ``flickr8k_cpu`` config, (a) the frozen image trunk and
(b) the frozen MiniLM forward, which the feature cache removes from every epoch, against
(c) one training step of everything trained above them (CBAM, projections, cross-attention,
fusion, heads, backward, Adam) on cached inputs; then (d) the cross-attention block alone for
growing text lengths. With ``--threads 1`` the CPU time is the cost of the work itself (more
threads add their spin-waiting to it).

    python tools/bench_crossattn.py --batch 32 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from ensemblab.config import load_config
from ensemblab.multimodal.cross_attention import BidirectionalCrossAttention
from ensemblab.projects.crossattn_vl.commands import resolve_config
from ensemblab.projects.crossattn_vl.model import VLModule


def _time(fn, repeats: int) -> float:
    """CPU seconds per call (process time: on a shared machine wall time measures the load)."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(resolve_config("flickr8k_cpu"))
    size, length = cfg["data"]["image_size"], 16
    module = VLModule(cfg, vocab_size=1500, pad_id=0, bos_id=2, eos_id=3,
                      text_vocab_size=30522, text_pad_id=0)
    module.features = True
    net = module.net
    images = torch.rand(args.batch, 3, size, size)
    ids = torch.randint(1000, 30000, (args.batch, length))
    pad = torch.zeros_like(ids, dtype=torch.bool)
    with torch.no_grad():
        t_trunk = _time(lambda: net.image_encoder.trunk_features(images), args.repeats)
        t_text = _time(lambda: net.text_encoder.hidden_states(ids, pad), args.repeats)
        maps = net.image_encoder.trunk_features(images)
        hidden = net.text_encoder.hidden_states(ids, pad)
    dec = torch.randint(5, 1500, (args.batch, length))
    dec[:, 0], dec[:, -1] = 2, 3
    batch = {"image": maps, "cap_dec": dec, "cap": {"pad": pad, "hidden": hidden},
             "prompt": {"pad": pad[:, :2], "hidden": hidden[:, :2]},
             "same": torch.eye(args.batch, dtype=torch.bool)}
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], 1e-3)
    module.train()

    def step():
        opt.zero_grad()
        sum(module.losses(batch).values()).backward()
        opt.step()

    t_step = _time(step, args.repeats)
    encoder = cfg["model"]["image"]["encoder"]
    print(f"{encoder} trunk, {args.batch} x {size}px: {1000 * t_trunk:.0f} CPU-ms/batch")
    print(f"MiniLM, {args.batch} x {length} tokens: {1000 * t_text:.0f} CPU-ms/batch")
    print(f"train step on cached inputs: {1000 * t_step:.0f} CPU-ms/batch")
    print(f"cached step / (cached step + trunk + MiniLM forwards): "
          f"{t_step / (t_step + t_trunk + t_text):.2f}")
    dim = cfg["model"]["dim"]
    attn = BidirectionalCrossAttention(dim, cfg["model"]["heads"], cfg["model"]["layers"]).eval()
    img = torch.randn(args.batch, (size // 32) ** 2, dim)
    base = None
    for n in (8, 16, 32, 64):
        txt = torch.randn(args.batch, n, dim)
        with torch.no_grad():
            t = _time(lambda txt=txt: attn(img, txt), args.repeats)
        base = base or t
        print(f"cross-attention, text length {n:3d}: {1000 * t:6.1f} CPU-ms ({t / base:.2f}x)")


if __name__ == "__main__":
    main()
