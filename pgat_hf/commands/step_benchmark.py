"""The step-time benchmark behind `pgat-hf bench` (commands/bench.py): what sharing one image encoding across K prompts saves, measured.

For each model config, one forward+backward step (PGAT loss included) of:
  (a) shared    the image encoded once, K prompts decoded against it (what training does)
  (b) repeated  the image repeated K times in one batched call, one prompt each
  (c) separate  K complete forwards, one per prompt
  (d) k1        one prompt (the K=1 baseline)
and the floor t_vision + K·t_decode, measured from its parts (encoder alone; one prompt's decode
against fixed features). Prints medians, the ratios a/b, a/c, a/d, a/floor and peak memory (CUDA:
max allocated; CPU: bytes of activations saved for backward). Also the share of a training step
spent waiting for the data loader with the default loader settings.

    pgat-hf bench [--configs tiny,mid] [--repeats 7] [--json PATH]
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pgat_hf.atomic import write_json_atomic
from pgat_hf.models.backends.sam3 import tiny_sam3_config
from pgat_hf.training.losses import PGATLoss


@dataclass
class BenchConfig:
    """A model size to benchmark; `vision_*` override the ViT backbone only (SAM3: ViT ≫ decoder)."""

    name: str
    hidden_size: int = 32
    image_size: int = 128
    patch_size: int = 8
    vision_layers: int = 2
    vision_hidden_size: int | None = None
    decoder_layers: int = 2
    num_queries: int = 16
    batch_size: int = 2
    text_length: int = 16


CONFIGS = {
    # The embedded default (docs/design.md §6).
    "tiny": BenchConfig("tiny"),
    # Vision-heavy like SAM3 (ViT 1024-wide x 32 layers vs a 256-wide decoder): ViT 256-wide x 8
    # layers on 32x32 tokens against a 32-wide decoder.
    "mid": BenchConfig("mid", hidden_size=32, image_size=256, patch_size=8, vision_layers=8,
                       vision_hidden_size=256, batch_size=1),
}


def build_model(config: BenchConfig, vocab_size: int = 128, seed: int = 0):
    from transformers import Sam3Model

    sam3_config = tiny_sam3_config(vocab_size=vocab_size, hidden_size=config.hidden_size,
                                   image_size=config.image_size, patch_size=config.patch_size,
                                   vision_layers=config.vision_layers, num_queries=config.num_queries,
                                   vision_hidden_size=config.vision_hidden_size,
                                   decoder_layers=config.decoder_layers, max_text_length=config.text_length)
    if config.vision_hidden_size:  # SAM3's ViT uses 64-wide heads
        sam3_config.vision_config.backbone_config.num_attention_heads = max(1, config.vision_hidden_size // 64)
    torch.manual_seed(seed)
    return Sam3Model(sam3_config)


def make_inputs(batch: int, prompts: int, image_size: int, text_length: int, vocab_size: int, device, seed=0):
    """pixel_values [B, 3, S, S]; input_ids, attention_mask [B, 1, K, L]; targets [B, 1, S, S]; present [B, 1]."""
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch, 3, image_size, image_size, generator=generator)
    input_ids = torch.randint(3, vocab_size, (batch, 1, prompts, text_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[..., text_length // 2:] = 0  # half-length prompts, as in real batches
    targets = (torch.rand(batch, 1, image_size, image_size, generator=generator) > 0.7).float()
    present = torch.ones(batch, 1)
    tensors = dict(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask,
                   targets=targets, present=present)
    return {k: v.to(device) for k, v in tensors.items()}


@functools.lru_cache(maxsize=1)
def demo_arguments():
    """The demo recipe's training arguments, parsed the way `train.py --config` parses them (a key
    the recipe leaves out gets the default)."""
    from pgat_hf.train import parse_args

    return parse_args(["--config", str(DEMO_RECIPE)])[2]


def demo_loss() -> PGATLoss:
    """The demo recipe's training loss."""
    return PGATLoss.from_args(demo_arguments())


def pgat_loss(mask_logits: torch.Tensor, presence_logits: torch.Tensor, targets, present) -> torch.Tensor:
    """The trainer's loss object (the demo's weights) on mask_logits [B, G, K, h, w], targets [B, G, S, S];
    K = 1 is the baseline, without the group terms."""
    loss = demo_loss() if mask_logits.shape[2] > 1 else demo_loss().without_group_terms()
    return loss(mask_logits, presence_logits, targets, present)[0]["loss"]


def step_functions(segmenter, inputs: dict, prompts: int) -> dict:
    """name -> zero-argument function returning the scalar loss of one forward."""
    pv, ids, mask = inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"]
    targets, present = inputs["targets"], inputs["present"]
    batch, length = ids.shape[0], ids.shape[-1]

    def shared():
        out = segmenter(pixel_values=pv, input_ids=ids, attention_mask=mask)
        return pgat_loss(out.mask_logits, out.presence_logits, targets, present)

    def repeated():
        out = segmenter(pixel_values=pv.repeat_interleave(prompts, dim=0),
                        input_ids=ids.reshape(batch * prompts, 1, 1, length),
                        attention_mask=mask.reshape(batch * prompts, 1, 1, length))
        mask_logits = out.mask_logits.reshape(batch, 1, prompts, *out.mask_logits.shape[-2:])
        return pgat_loss(mask_logits, out.presence_logits.reshape(batch, 1, prompts), targets, present)

    def separate():
        out = segmenter.forward_separately(pv, ids, mask)
        return pgat_loss(out.mask_logits, out.presence_logits, targets, present)

    def k1():
        out = segmenter(pixel_values=pv, input_ids=ids[:, :, :1], attention_mask=mask[:, :, :1])
        return pgat_loss(out.mask_logits, out.presence_logits, targets, present)

    def vision():
        features = segmenter.backend.encode_image(pv)
        parts = [features.last_hidden_state, *features.fpn_hidden_states]
        return sum(part.float().mean() for part in parts)

    with torch.no_grad():  # computed once, outside the timed decode
        fixed_features = segmenter.backend.encode_image(pv)

    def decode_one():
        # Fresh leaves that need grad, as the features do inside a full step: backward stops at them.
        features = type(fixed_features)(
            last_hidden_state=fixed_features.last_hidden_state.detach().requires_grad_(),
            fpn_hidden_states=tuple(t.detach().requires_grad_() for t in fixed_features.fpn_hidden_states),
            fpn_position_encoding=fixed_features.fpn_position_encoding,
        )
        out = segmenter.decode_prompts(features, ids[:, :, :1], mask[:, :, :1])
        return pgat_loss(out.mask_logits, out.presence_logits, targets, present)

    return {"shared": shared, "repeated": repeated, "separate": separate, "k1": k1,
            "vision": vision, "decode_one": decode_one}


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_once(model, loss_fn, device, autocast_dtype=None) -> float:
    """Wall time (ms) of one forward + backward."""
    device_type = torch.device(device).type
    model.zero_grad(set_to_none=True)
    synchronize(device)
    start = time.perf_counter()
    with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = loss_fn()
    loss.backward()
    synchronize(device)
    return 1000 * (time.perf_counter() - start)


def time_variants(model, functions: dict, repeats: int, warmup: int, device, autocast_dtype=None) -> dict:
    """Median ms per variant, variants interleaved round by round so that load drifting on a
    shared machine hits every variant alike (the ratios are what matter)."""
    times = {name: [] for name in functions}
    for index in range(warmup + repeats):
        for name, loss_fn in functions.items():
            elapsed = time_once(model, loss_fn, device, autocast_dtype)
            if index >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory_mb(model, loss_fn, device, autocast_dtype=None) -> float:
    """CUDA: peak allocated above the resting state; CPU: activations saved for backward (no params)."""
    device_type = torch.device(device).type
    model.zero_grad(set_to_none=True)
    if device_type == "cuda":
        synchronize(device)
        resting = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn()
        loss.backward()
        synchronize(device)
        return (torch.cuda.max_memory_allocated() - resting) / 2**20
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn()
    loss.backward()
    return sum(saved.values()) / 2**20


def bench_model(model, config_name: str, batch: int, prompts: int, text_length: int, repeats: int, warmup: int,
                device="cpu", autocast_dtype=None, variants=("shared", "repeated", "separate", "k1"),
                floor: bool = True) -> dict:
    """Time the variants on one Sam3Model; returns medians (ms), ratios and peak memory (MB)."""
    from pgat_hf.models.factory import make_segmenter

    segmenter = make_segmenter(model.to(device)).train()
    image_size = int(model.config.vision_config.backbone_config.image_size)
    vocab = int(model.config.text_config.vocab_size)
    inputs = make_inputs(batch, prompts, image_size, text_length, vocab, device)
    functions = step_functions(segmenter, inputs, prompts)
    names = list(variants) + (["vision", "decode_one"] if floor else [])
    medians = time_variants(segmenter, {name: functions[name] for name in names}, repeats, warmup, device,
                            autocast_dtype)
    memory = {name: peak_memory_mb(segmenter, functions[name], device, autocast_dtype) for name in variants}
    result = {"config": config_name, "batch_size": batch, "num_prompts": prompts, "image_size": image_size,
              "device": str(device), "repeats": repeats,
              "memory_kind": "cuda_max_allocated" if torch.device(device).type == "cuda" else "cpu_saved_activations",
              "median_ms": {name: round(value, 3) for name, value in medians.items()},
              "peak_memory_mb": {name: round(value, 2) for name, value in memory.items()}}
    shared = medians.get("shared")
    for name, key in (("repeated", "shared_vs_repeated"), ("separate", "shared_vs_separate"), ("k1", "shared_vs_k1")):
        if shared is not None and name in medians:
            result[key] = round(shared / medians[name], 4)
    if floor and shared is not None:
        medians["floor"] = medians["vision"] + prompts * medians["decode_one"]
        result["median_ms"]["floor"] = round(medians["floor"], 3)
        result["shared_vs_floor"] = round(shared / medians["floor"], 4)
    return result


class StepClock:
    """Trainer callback recording when each optimisation step begins."""

    def __init__(self):
        self.starts = []

    def __getattr__(self, name):  # every other callback event is a no-op
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_begin(self, args, state, control, **kwargs):
        self.starts.append(time.perf_counter())


DEMO_RECIPE = Path(__file__).parents[1] / "recipes" / "demo.yaml"


def demo_batch_shape() -> dict:
    """Batch size, G and K of the demo recipe, so the data-wait share follows demo.yaml."""
    demo = demo_arguments()
    return {"batch_size": demo.per_device_train_batch_size, "groups_per_image": demo.groups_per_image,
            "num_prompts": demo.num_prompts}


def data_wait_share(steps: int = 12, warmup: int = 2, image_size: int = 128) -> dict:
    """Share of a demo training step spent in the data loader (default loader settings).

    Demo setting: tiny model at `image_size`, the demo recipe's batch size, G and K, augmentation on.
    Times `next(loader)` against compute (forward, PGAT loss, backward, AdamW step) in a plain loop,
    and reports the steady-state step time of `PGATTrainer.train` for the same setting
    (trainer_overhead_ms: what the Trainer adds over the plain loop).
    """
    from pgat_hf.training.collator import PromptGroupCollator
    from pgat_hf.models.factory import build_tiny_model, make_segmenter
    from pgat_hf.data.synthetic import generate_synthetic_dataset
    from pgat_hf.training.trainer import PGATTrainer
    from pgat_hf.training.arguments import PGATTrainingArguments
    from datasets import load_dataset

    shape = demo_batch_shape()
    batch_size = shape["batch_size"]
    with tempfile.TemporaryDirectory() as tmp:
        generate_synthetic_dataset(tmp, num_train=batch_size * (steps + warmup), num_test=1,
                                   image_size=image_size, seed=0)
        train = load_dataset(tmp, "synthetic")["train"]
        model, tokenizer, image_processor = build_tiny_model(image_size=image_size)
        args = PGATTrainingArguments(output_dir=tmp + "/out", per_device_train_batch_size=batch_size,
                                     max_steps=steps + warmup, report_to="none", disable_tqdm=True,
                                     save_strategy="no", logging_steps=50, learning_rate=2e-3,
                                     groups_per_image=shape["groups_per_image"], num_prompts=shape["num_prompts"])
        collator = PromptGroupCollator(tokenizer=tokenizer, image_processor=image_processor,
                                       num_prompts=args.num_prompts, groups_per_image=args.groups_per_image)
        trainer = PGATTrainer(model=make_segmenter(model), args=args, train_dataset=train, data_collator=collator,
                              processing_class=tokenizer, image_processor=image_processor)
        segmenter = trainer.model
        optimizer = torch.optim.AdamW(segmenter.parameters(), lr=2e-3)
        loader = iter(trainer.get_train_dataloader())
        data_ms, compute_ms = [], []
        for index in range(steps + warmup):
            start = time.perf_counter()
            batch = next(loader)
            fetched = time.perf_counter()
            loss = trainer.compute_loss(segmenter, dict(batch))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = time.perf_counter()
            if index >= warmup:
                data_ms.append(1000 * (fetched - start))
                compute_ms.append(1000 * (done - fetched))
        clock = StepClock()
        trainer.add_callback(clock)
        trainer.train()
        # Steady state: step-begin to step-begin, after the same warm-up (first steps pay one-off setup).
        intervals = [1000 * (b - a) for a, b in zip(clock.starts, clock.starts[1:])][warmup:]
        trainer_ms = statistics.median(intervals)
    data, compute = statistics.median(data_ms), statistics.median(compute_ms)
    return {"batch_size": batch_size, "image_size": image_size, "groups_per_image": args.groups_per_image,
            "num_prompts": args.num_prompts, "dataloader_num_workers": args.dataloader_num_workers,
            "data_ms": round(data, 3), "compute_ms": round(compute, 3),
            "data_wait_share": round(sum(data_ms) / (sum(data_ms) + sum(compute_ms)), 4),
            "trainer_step_ms": round(trainer_ms, 3), "trainer_overhead_ms": round(trainer_ms - data - compute, 3)}


def format_table(results: dict) -> str:
    lines = []
    for name, result in results.items():
        if name == "data":
            continue
        medians, memory = result["median_ms"], result["peak_memory_mb"]
        lines.append(f"[{name}] batch {result['batch_size']}, K={result['num_prompts']}, "
                     f"{result['image_size']} px, {result['device']}, median of {result['repeats']}")
        lines.append(f"  {'variant':<11}{'ms':>10}{'memory MB':>12}")
        for variant, value in medians.items():
            mem = memory.get(variant)
            lines.append(f"  {variant:<11}{value:>10.1f}{'' if mem is None else f'{mem:>12.1f}'}")
        ratios = [f"{key.replace('shared_vs_', 'a/')}={result[key]:.3f}" for key in
                  ("shared_vs_repeated", "shared_vs_separate", "shared_vs_k1", "shared_vs_floor") if key in result]
        lines.append("  " + "  ".join(ratios) + f"  (memory: {result['memory_kind']})")
    if "data" in results:
        data = results["data"]
        lines.append(f"[data] demo batch {data['batch_size']} x G={data['groups_per_image']} x K={data['num_prompts']} "
                     f"at {data['image_size']} px, num_workers={data['dataloader_num_workers']}: loader "
                     f"{data['data_ms']:.1f} ms, compute {data['compute_ms']:.1f} ms, waiting share "
                     f"{100 * data['data_wait_share']:.1f}%; PGATTrainer step {data['trainer_step_ms']:.1f} ms "
                     f"({data['trainer_overhead_ms']:+.1f} ms over the plain loop)")
    return "\n".join(lines)


def run(args) -> int:
    """`pgat-hf bench` with parsed arguments (commands/bench.py)."""
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config {unknown}; choose from {list(CONFIGS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for name in names:
        config = CONFIGS[name]
        model = build_model(config)
        results[name] = bench_model(model, name, config.batch_size, args.prompts, config.text_length,
                                    args.repeats, args.warmup, args.device)
    if args.data_steps:
        results["data"] = data_wait_share(steps=args.data_steps, image_size=args.data_image_size)
    print(format_table(results))
    if args.json_path:  # its folder created, written whole (never a half file), readable by all
        write_json_atomic(args.json_path, results, indent=2)
    return 0

