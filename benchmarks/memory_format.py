"""Which memory format is faster for each trunk on this device: contiguous or channels_last.

For every trunk (``small_cnn`` on 1x32x32 glyphs, ``googlenet`` and ``resnet50`` with random
weights on 3xSxS photos) it times a training step (forward, loss, backward, Adam step) and the
embedding of a batch under ``inference_mode``, once with the network and input contiguous and once
both in channels_last, with the same weights and data, back to back in alternating order. It
prints the median times, the ratio contiguous / channels_last (> 1: channels_last is faster) and
the largest difference between the two formats' embeddings (float rounding only). The table in
``dml_bench/train/device.py`` is copied from its output.

    python benchmarks/memory_format.py [--trunks small_cnn,googlenet,resnet50] [--threads 1,2]
        [--repeats 9] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dml_bench.models import build_embedder


@dataclass(frozen=True)
class Shape:
    channels: int
    size: int
    train_batch: int
    embed_batch: int


# small_cnn: the default glyph run (batch 64, eval batch 512). Photo trunks: the paper's 227 crop
# with the nofuss batch of 32 on GPU; on CPU smaller batches keep the script to minutes.
SHAPES = {
    "small_cnn": Shape(1, 32, 64, 512),
    "googlenet": Shape(3, 227, 32, 64),
    "resnet50": Shape(3, 227, 32, 64),
}
CPU_PHOTO_BATCH = 8


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


FORMATS = (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last))
"""The two memory formats compared, by the name the results use."""


def _copy_in_format(
    trunk: str, state: dict[str, torch.Tensor], device: torch.device, fmt: torch.memory_format
) -> torch.nn.Module:
    """A fresh ``trunk`` embedder holding the weights ``state``, on ``device`` in format ``fmt``."""
    model = build_embedder(trunk, SHAPES[trunk].channels, 64, pretrained=False)
    model.load_state_dict(state)
    return model.to(device).to(memory_format=fmt)


def measure(trunk: str, device: torch.device, repeats: int) -> dict[str, float]:
    shape = SHAPES[trunk]
    train_b, embed_b = shape.train_batch, shape.embed_batch
    if device.type == "cpu" and shape.channels == 3:
        train_b = embed_b = CPU_PHOTO_BATCH
    g = torch.Generator().manual_seed(0)
    x_train = torch.rand(train_b, shape.channels, shape.size, shape.size, generator=g)
    x_embed = torch.rand(embed_b, shape.channels, shape.size, shape.size, generator=g)
    torch.manual_seed(0)
    base = build_embedder(trunk, shape.channels, 64, pretrained=False)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    setups = {}
    for name, fmt in FORMATS:
        model = _copy_in_format(trunk, state, device, fmt)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        xt = x_train.to(device).contiguous(memory_format=fmt)
        xe = x_embed.to(device).contiguous(memory_format=fmt)
        setups[name] = (model, optimizer, xt, xe)

    def step(name: str) -> Callable[[], None]:
        model, optimizer, xt, _ = setups[name]

        def run() -> None:
            model.train()
            loss = model(xt).square().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return run

    def embed(name: str) -> Callable[[], None]:
        model, _, _, xe = setups[name]

        def run() -> None:
            model.eval()
            with torch.inference_mode():
                model(xe)

        return run

    times: dict[str, list[float]] = {}
    for kind, factory in (("train", step), ("embed", embed)):
        for name in setups:  # warm-up: oneDNN picks and caches its kernels on the first call
            factory(name)()
        for r in range(repeats):
            order = list(setups) if r % 2 == 0 else list(reversed(setups))
            for name in order:
                times.setdefault(f"{kind}_{name}", []).append(_timed(factory(name), device))
    out = {k: statistics.median(v) for k, v in times.items()}
    # Same weights, same input: the two formats differ by float rounding only.
    fresh = {}
    for name, fmt in FORMATS:
        model = _copy_in_format(trunk, state, device, fmt).eval()
        with torch.inference_mode():
            fresh[name] = model(x_embed.to(device).contiguous(memory_format=fmt)).float().cpu()
    out["max_abs_diff"] = float((fresh["contiguous"] - fresh["channels_last"]).abs().max())
    out["train_batch"], out["embed_batch"] = train_b, embed_b
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunks", default="small_cnn,googlenet,resnet50")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        "trunk | threads | batch train/embed | train ms contiguous / channels_last (ratio) | "
        "embed ms contiguous / channels_last (ratio) | max |diff| of embeddings"
    )
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for trunk in args.trunks.split(","):
            m = measure(trunk, device, args.repeats)
            tc, tl = m["train_contiguous"] * 1e3, m["train_channels_last"] * 1e3
            ec, el = m["embed_contiguous"] * 1e3, m["embed_channels_last"] * 1e3
            print(
                f"{trunk} | {threads} | {m['train_batch']:.0f}/{m['embed_batch']:.0f} | "
                f"{tc:.1f} / {tl:.1f} ({tc / tl:.2f}x) | {ec:.1f} / {el:.1f} ({ec / el:.2f}x) | "
                f"{m['max_abs_diff']:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
