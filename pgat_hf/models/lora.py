"""PEFT LoRA for SAM3: target presets, wrapping, and merging adapters back into a stock state dict.

Presets name SAM3's parts; each maps to a regex over module names (peft matches a string
`target_modules` with `re.fullmatch`). Attention projections and MLPs of the repeated layers get
adapters; the small heads that turn features into this task's outputs are trained in full
(`modules_to_save`), because a low-rank update of a 1x1 projection is no cheaper than the projection.
"""

from __future__ import annotations

import torch

# SAM3 part -> module-name regex (names as in transformers' Sam3Model.named_modules()).
LORA_TARGET_PRESETS = {
    "vision": r"vision_encoder\.backbone\.layers\.\d+\.(attention\.(q|k|v|o)_proj|mlp\.fc[12])",
    "text": r"text_encoder\.text_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.fc[12])",
    "detr_encoder": r"detr_encoder\.layers\.\d+\.((self|cross)_attn\.(q|k|v|o)_proj|mlp\.fc[12])",
    "detr_decoder": r"detr_decoder\.layers\.\d+\.((self|text_cross|vision_cross)_attn\.(q|k|v|o)_proj|mlp\.fc[12])",
    "mask_decoder": r"mask_decoder\.(prompt_cross_attn\.(q|k|v|o)_proj|mask_embedder\.layers\.\d+)",
}
ALL_PARTS = tuple(LORA_TARGET_PRESETS)
# Heads trained in full next to the adapters: the semantic (mask_source=semantic) and instance
# (topk) mask projections and the presence head that L_presence trains.
DEFAULT_MODULES_TO_SAVE = ("semantic_projection", "instance_projection", "presence_head")
ADAPTER_SUBFOLDER = "lora_adapter"  # merged checkpoints keep the adapter here, for resuming only


def resolve_lora_parts(lora_target: str, freeze_text_encoder: bool = False) -> list[str]:
    """'all' or a comma-separated list of preset names -> the parts to adapt.

    'all' leaves out the text encoder when it is frozen; naming 'text' together with a frozen text
    encoder is a contradiction and raises.
    """
    names = [name.strip() for name in lora_target.split(",") if name.strip()]
    if not names:
        raise ValueError("lora_target is empty")
    unknown = [name for name in names if name != "all" and name not in LORA_TARGET_PRESETS]
    if unknown:
        raise ValueError(f"unknown lora_target {unknown}; choose from all, {', '.join(ALL_PARTS)}")
    if "all" in names:
        return [part for part in ALL_PARTS if not (freeze_text_encoder and part == "text")]
    if freeze_text_encoder and "text" in names:
        raise ValueError("lora_target 'text' adapts the text encoder that freeze_text_encoder keeps fixed")
    return [part for part in ALL_PARTS if part in names]


def lora_target_regex(parts: list[str]) -> str:
    return "|".join(f"({LORA_TARGET_PRESETS[part]})" for part in parts)


def apply_lora(model, r: int = 8, alpha: float = 16.0, dropout: float = 0.0, target: str = "all",
               modules_to_save=DEFAULT_MODULES_TO_SAVE, freeze_text_encoder: bool = False):
    """Stock Sam3Model -> peft PeftModel: base weights frozen, adapters + `modules_to_save` trainable."""
    from peft import LoraConfig, get_peft_model

    parts = resolve_lora_parts(target, freeze_text_encoder)
    if "text" in parts and not model.config.text_config.num_hidden_layers:
        if "all" not in {name.strip() for name in target.split(",")}:
            raise ValueError(f"lora_target {target!r} names text, but this model's text encoder has no layers "
                             "(tiny_text_layers 0: its token vectors are frozen and it has nothing to adapt)")
        parts = [part for part in parts if part != "text"]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_target_regex(parts),
                        modules_to_save=list(modules_to_save) or None, bias="none")
    return get_peft_model(model, config)


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # peft is a dependency, but a stock-only environment can still import this module
        return False
    return isinstance(model, PeftModel)


PEFT_PREFIX = "base_model.model."


def merge_lora_state_dict(state_dict: dict[str, torch.Tensor], scaling: float,
                          adapter: str = "default") -> dict[str, torch.Tensor]:
    """A PeftModel's full state dict -> the stock model's state dict with W + scaling·B·A merged in.

    Works from the state dict alone, so it also serves a state dict gathered by FSDP or DeepSpeed.
    Linear: A [r, in], B [out, r]; Conv2d: A [r, in, kh, kw], B [out, r, 1, 1].
    modules_to_save: the trained copy replaces the original module's weights.
    """
    merged = {}
    for key, tensor in state_dict.items():
        name = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
        if ".lora_" in name or ".original_module." in name:
            continue  # folded into the base weight / superseded by the trained copy
        if f".modules_to_save.{adapter}." in name:
            merged[name.replace(f".modules_to_save.{adapter}.", ".")] = tensor
            continue
        if ".base_layer." in name:
            module, param = name.rsplit(".base_layer.", 1)
            stock_name = f"{module}.{param}"
            lora_a = state_dict.get(f"{PEFT_PREFIX}{module}.lora_A.{adapter}.weight")
            if param == "weight" and lora_a is not None:
                lora_b = state_dict[f"{PEFT_PREFIX}{module}.lora_B.{adapter}.weight"]
                delta = lora_b.float().flatten(1) @ lora_a.float().flatten(1)  # [out, in*kh*kw]
                tensor = (tensor.float() + scaling * delta.reshape(tensor.shape)).to(tensor.dtype)
            merged[stock_name] = tensor
            continue
        merged[name] = tensor
    return merged


def lora_scaling(peft_model, adapter: str = "default") -> float:
    config = peft_model.peft_config[adapter]
    if getattr(config, "use_rslora", False):
        return config.lora_alpha / config.r ** 0.5
    return config.lora_alpha / config.r
