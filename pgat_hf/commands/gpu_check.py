"""One-call GPU check: a SAM3-size model (real dimensions, random weights) at 1008 px in bf16.

    python -m pgat_hf.commands.gpu_check [--json PATH]          # on a GPU machine (not yet run on one: no GPU here)
    python -m pgat_hf.commands.gpu_check --tiny --repeats 1     # the same code path at tiny size on CPU (tests)

Batch 1, one forward+backward step with the PGAT loss (bf16 autocast, fp32 weights, as training
with --bf16 runs): K=1, K=3 with the image encoded once (shared), K=3 with the image repeated K
times (repeated), and the floor t_vision + K·t_decode. Prints step time and peak memory per row.
The dimensions are transformers' `Sam3Config()` defaults (ViT-L-like 1024 x 32 layers at 1008 px,
CLIP text 1024 x 24, DETR 256 x 6 + 6 layers, 200 queries); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pgat_hf.commands.step_benchmark import BenchConfig, bench_model, build_model


def sam3_size_model(device):
    """Random-init Sam3Model with the published architecture, built directly on `device`."""
    from transformers import Sam3Config, Sam3Model

    config = Sam3Config()
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: ~0.85B parameters are slow to init on CPU
        model = Sam3Model(config)
    return model


def format_rows(result: dict, elapsed_s: float) -> str:
    medians, memory = result["median_ms"], result["peak_memory_mb"]
    rows = [("K=1", "k1", 1), (f"K={result['num_prompts']} shared", "shared", None),
            (f"K={result['num_prompts']} repeated", "repeated", None)]
    lines = [f"SAM3-size check: {result['image_size']} px, batch {result['batch_size']}, {result['device']}, "
             f"{result['dtype']}, median of {result['repeats']} steps ({elapsed_s:.0f} s total)",
             f"{'run':<16}{'step ms':>10}{'peak MB':>12}"]
    for label, key, _ in rows:
        if key in medians:
            lines.append(f"{label:<16}{medians[key]:>10.1f}{memory.get(key, float('nan')):>12.1f}")
    for label, key in (("vision only", "vision"), ("one decode", "decode_one"), ("floor", "floor")):
        if key in medians:
            lines.append(f"{label:<16}{medians[key]:>10.1f}")
    ratios = [f"{key.replace('shared_vs_', 'shared/')}={result[key]:.3f}"
              for key in ("shared_vs_repeated", "shared_vs_k1", "shared_vs_floor") if key in result]
    lines.append("  ".join(ratios) + f"  (memory: {result['memory_kind']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgat_hf.commands.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model at 64 px (CPU smoke test of this script)")
    parser.add_argument("--prompts", type=int, default=3, help="K for the shared and repeated rows")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per row (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (cuDNN autotune, allocator)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="autocast dtype")
    parser.add_argument("--json", dest="json_path", help="write the result here as JSON")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    autocast_dtype = torch.bfloat16 if args.dtype == "bf16" else None
    if args.tiny:
        model, text_length = build_model(BenchConfig("tiny", hidden_size=16, image_size=64)), 8
    else:
        if args.device == "cpu":
            print("warning: no GPU; the SAM3-size check on CPU takes a long time", flush=True)
        model, text_length = sam3_size_model(args.device), 32
    if torch.device(args.device).type == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
              f"bf16 supported: {torch.cuda.is_bf16_supported()}", flush=True)
    parameters = sum(p.numel() for p in model.parameters())
    result = bench_model(model, "sam3" if not args.tiny else "tiny", batch=1, prompts=args.prompts,
                         text_length=text_length, repeats=args.repeats, warmup=args.warmup, device=args.device,
                         autocast_dtype=autocast_dtype, variants=("k1", "shared", "repeated"))
    result.update(dtype=args.dtype, parameters=parameters)
    elapsed = time.perf_counter() - start
    print(f"parameters: {parameters / 1e6:.1f} M")
    print(format_rows(result, elapsed))
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
