"""Command line of the starter kit: train, evaluate, tokenizer, sample.

Owns argument parsing only; the work lives in `train`, `evaluate`, `tokenizer` and
`world`, imported lazily so `--help` stays instant and torch-free.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import assets_dir

EPILOG = """\
examples:
  python -m studio.starter train                  # tokenizer + CNN + CLIP into assets/starter (~25 min, 2 CPU cores)
  python -m studio.starter train --only cnn       # just the timm CNN (~4 min)
  python -m studio.starter train --only diffusion # VAE + UNet + inpaint + 3 ControlNets (~60-80 min, needs clip/)
  python -m studio.starter train --only motion    # AnimateDiff MotionAdapter on the starter UNet (needs sd/, clip/)
  python -m studio.starter train --only vlm       # the LLaVA-style chat VLM (needs clip/: its vision tower)
  python -m studio.starter train --out /tmp/s --scale 0.1   # a quick smoke run (10% of the steps)
  python -m studio.starter evaluate               # table of the quality bars on held-out seeds
  python -m studio.starter evaluate --json        # one JSON object: cnn_top1, clip_zeroshot_top1, ...
  python -m studio.starter tokenizer --out DIR    # the offline CLIP tokenizer folder only
  python -m studio.starter sample --seed 7 --out scene.png   # look at the Shapes world

Training is deterministic (fixed seeds, train seeds < 1e9); evaluation uses seeds >= 1e9.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m studio.starter",
        description="Shapes world + tiny offline starter models (timm CNN, transformers CLIP).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="rebuild the tokenizer folder and the models from scratch")
    t.add_argument("--only", choices=["cnn", "clip", "diffusion", "vlm", "motion"],
                   help="train one model only (diffusion: VAE, UNet, inpaint UNet, 3 ControlNets; vlm: the chat "
                        "VLM; both need clip/; motion: the AnimateDiff MotionAdapter, needs sd/ and clip/)")
    t.add_argument("--out", type=Path, default=None, help="output folder (default: assets/starter)")
    t.add_argument("--clip", type=Path, default=None,
                   help="the starter CLIP folder diffusion and vlm build on (default: OUT/clip)")
    t.add_argument("--scale", type=float, default=1.0,
                   help="fraction of the training steps (1.0 reproduces the shipped weights)")
    e = sub.add_parser("evaluate", help="measure the quality bars on held-out seeds")
    e.add_argument("--assets", type=Path, default=None, help="folder with cnn/ and clip/")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    e.add_argument("--quick", action="store_true", help="small samples (seconds, noisier)")
    e.add_argument("--only", choices=["cnn", "clip", "diffusion", "vlm", "motion"], help="evaluate one model only")
    k = sub.add_parser("tokenizer", help="write the offline CLIP tokenizer folder")
    k.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("sample", help="save a scene (image | instance mask | depth | edges | pose)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--objects", type=int, default=None)
    s.add_argument("--out", type=Path, default=Path("scene.png"))
    return p


def _sample(args) -> int:
    import numpy as np
    from PIL import Image

    from .world import make_scene, render_pose

    scene = make_scene(args.seed, args.objects)
    palette = np.random.default_rng(0).integers(40, 255, (8, 3)).astype(np.uint8)
    palette[0] = 0
    panels = [scene.image, palette[scene.instance_mask % 8],
              np.repeat((scene.depth * 255).astype(np.uint8)[..., None], 3, 2),
              np.repeat(scene.edges[..., None], 3, 2), render_pose(scene.pose)]
    strip = np.concatenate(panels, 1)
    Image.fromarray(strip).resize((strip.shape[1] * 4, strip.shape[0] * 4), Image.NEAREST).save(args.out)
    print(f"{args.out}: {scene.caption!r} ({scene.background} background)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Before torch loads OpenMP: spinning workers waste most of a shared 2-core CPU (measured
    # 3x slower training steps when other jobs run), sleeping ones cost nothing when alone.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.command == "train" and args.only == "diffusion":
        from .diffusion_train import train_diffusion

        train_diffusion(args.out or assets_dir(), clip=args.clip, scale=args.scale,
                        log=lambda line: print(line, flush=True))
        return 0
    if args.command == "train" and args.only == "vlm":
        import torch

        from .vlm_train import STEPS, threads, train_vlm

        torch.set_num_threads(threads())
        out = args.out or assets_dir()
        train_vlm(out, args.clip or out / "clip", steps=max(1, int(STEPS * args.scale)),
                  log=lambda line: print(line, flush=True))
        return 0
    if args.command == "train" and args.only == "motion":
        from .motion_train import train_shipped

        train_shipped(args.out or assets_dir(), scale=args.scale, log=lambda line: print(line, flush=True))
        return 0
    if args.command == "train":
        from .train import train_all

        train_all(args.out or assets_dir(), only=args.only, scale=args.scale,
                  log=lambda line: print(line, flush=True))
        return 0
    if args.command == "evaluate":
        from .evaluate import evaluate, format_table

        result = evaluate(args.assets or assets_dir(), quick=args.quick, only=args.only)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.command == "tokenizer":
        from .tokenizer import write_tokenizer

        print(write_tokenizer(args.out))
        return 0
    if args.command == "sample":
        return _sample(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
