"""Training throughput of both variants and evaluation time for a large gallery, on this machine.

    python benchmarks/train_speed.py [--steps 10] [--gallery 10000] [--json out.json]

Prints a table: samples/s of a full training step (forward, loss, backward, clip, AdamW) with the
official sizes for the `official` and `temporal` variants, and the seconds to evaluate an N-item
gallery in both directions (embeddings of the official 2560-d size) with and without DIS, against a
plain numpy full-matrix ranking in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from beatdance.model import BeatBlender, BlenderConfig, ContrastiveLoss
from beatdance.retrieval.evaluate import ModalityEmbeddings, evaluate_retrieval


def _sync(device: str) -> None:
    """Wait for queued CUDA work, so that a timer reads finished steps."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_speed(variant: str, *, steps: int, batch: int, device: str = "cpu") -> float:
    """Samples/s of full training steps of ``variant`` at the official sizes on ``device`` (float32)."""
    torch.manual_seed(0)
    cfg = BlenderConfig(variant=variant)  # type: ignore[arg-type]
    model, loss_fn = BeatBlender(cfg).to(device), ContrastiveLoss().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.2, eps=1e-6)
    grids = [(torch.rand(batch, 10, 10) > 0.8).float() for _ in range(2)]
    x = tuple(t.to(device) for t in (torch.randn(batch, 10, 768), torch.randn(batch, 10, 512), *grids))

    def step() -> None:
        loss, _ = loss_fn(model(*x))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def _embeddings(n: int, dim: int, rng: np.random.Generator, base: np.ndarray | None = None) -> ModalityEmbeddings:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    if base is not None:
        x = base + 0.8 * x
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    grid = (rng.random((n, 100)) > 0.8).astype(np.float32)
    return ModalityEmbeddings(fuse=x, beat_head=None, beat_grid=grid, ids=[str(i) for i in range(n)], groups=None)


def numpy_baseline(music: np.ndarray, dance: np.ndarray) -> None:
    """Full-matrix ranks in both directions with plain numpy (memory: N^2 floats)."""
    s = music @ dance.T
    diag = np.diag(s)
    _ = (s > diag[:, None]).sum(1), (s > diag[None, :]).sum(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--gallery", type=int, default=10_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for variant in ("official", "temporal"):
        rows.append(
            {
                "what": f"train step, {variant}",
                "value": train_speed(variant, steps=args.steps, batch=args.batch),
                "unit": "samples/s",
            }
        )
    rng = np.random.default_rng(0)
    music = _embeddings(args.gallery, 2560, rng)
    dance = _embeddings(args.gallery, 2560, rng, base=music.fuse)
    bank = _embeddings(args.gallery, 2560, rng)
    t0 = time.perf_counter()
    numpy_baseline(music.fuse, dance.fuse)
    rows.append(
        {
            "what": f"numpy full-matrix ranks (baseline), N={args.gallery}",
            "value": time.perf_counter() - t0,
            "unit": "s",
        }
    )
    for hub in ("none", "dis"):
        t0 = time.perf_counter()
        kw = {"bank_music": bank, "bank_dance": bank} if hub != "none" else {}
        evaluate_retrieval(music=music, dance=dance, hubness=hub, **kw)
        rows.append(
            {
                "what": f"evaluate_retrieval hubness={hub}, N={args.gallery} (both directions, BS@K)",
                "value": time.perf_counter() - t0,
                "unit": "s",
            }
        )
    width = max(len(r["what"]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>10}  unit   (torch threads: {torch.get_num_threads()})")
    for r in rows:
        print(f"{r['what']:<{width}}  {r['value']:>10.2f}  {r['unit']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
