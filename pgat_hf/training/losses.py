"""Pure loss functions and the PGAT objective (docs/design.md sections 1 and 4).

Every function is a small, stateless torch function in the style of SAM2's
``training/loss_fns.py``: tensors in, tensors out, shapes in the docstring. Shape notation:

- ``...`` any leading dimensions, typically ``(batch, group)``;
- ``K`` prompts per group (the prompt axis), ``H, W`` the mask resolution.

Per-prompt losses (``sigmoid_focal_loss``, ``bce_loss``, ``dice_loss``, ``presence_loss``,
``segmentation_loss``) keep the leading dimensions. Group terms (``group_loss``,
``consistency_loss``) act within each group, i.e. along the ``K`` axis, and are then averaged
over all leading dimensions to a scalar. ``pgat_objective`` combines them:

    loss = mean(L_seg) + lam * L_group + beta * L_cons

Losses are computed in at least float32 (fp16/bf16 inputs are upcast) so that bf16/fp16 mixed precision
does not lose the small per-pixel terms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional

import torch
import torch.nn.functional as F

GROUP_LOSS_MODES = ("ranking", "detached", "softmin")
CONSISTENCY_MODES = ("reference", "pairwise")
MASK_LOSSES = ("bce", "focal")

__all__ = [
    "GROUP_LOSS_MODES",
    "CONSISTENCY_MODES",
    "MASK_LOSSES",
    "sigmoid_focal_loss",
    "bce_loss",
    "dice_loss",
    "presence_loss",
    "segmentation_loss",
    "group_loss",
    "effective_prompt_weights",
    "consistency_loss",
    "pgat_objective",
    "PGATLoss",
]


def _check_mode(mode: str, allowed: tuple, what: str) -> None:
    if mode not in allowed:
        raise ValueError(f"unknown {what} {mode!r}; expected one of {', '.join(allowed)}")


def _upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision (fp16/bf16) tensors to float32; float32/float64 unchanged."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor


def _zero_like_graph(tensor: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that is connected to ``tensor``'s graph (zero gradient), so that
    ``.backward()`` and DDP see the same graph whatever K, lambda or beta are."""
    return tensor.sum() * 0.0


# ----------------------------------------------------------------------------------------
# Per-prompt losses
# ----------------------------------------------------------------------------------------


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al., 2017), averaged over the pixels.

    Args:
        logits: ``[..., H, W]`` mask logits.
        targets: ``[..., H, W]`` binary (0/1, bool or float) ground truth.
        alpha: weight of the positive class in ``(0, 1)``; ``alpha < 0`` disables the
            alpha weighting.
        gamma: focusing exponent; ``gamma = 0`` gives (alpha-weighted) BCE.

    Returns:
        ``[...]``: mean over ``H, W`` of
        ``alpha_t * (1 - p_t)**gamma * BCE``, with ``p = sigmoid(logits)``,
        ``p_t = p*t + (1-p)*(1-t)``, ``alpha_t = alpha*t + (1-alpha)*(1-t)``.
    """
    logits = _upcast(logits)
    targets = targets.to(logits.dtype)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss.mean(dim=(-2, -1))


def bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pos_weight: Optional[float] = None,
) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over the pixels.

    Args:
        logits: ``[..., H, W]`` mask logits.
        targets: ``[..., H, W]`` binary ground truth.
        pos_weight: optional scalar weight of positive pixels
            (``-pos_weight * t * log p - (1 - t) * log(1 - p)``); the demo uses 3 so that
            short runs do not collapse to empty masks (docs/design.md section 6).

    Returns:
        ``[...]``: mean over ``H, W``.
    """
    logits = _upcast(logits)
    targets = targets.to(logits.dtype)
    weight = None
    if pos_weight is not None:
        weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none", pos_weight=weight)
    return loss.mean(dim=(-2, -1))


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft Dice loss with +1 smoothing.

    Args:
        logits: ``[..., H, W]`` mask logits.
        targets: ``[..., H, W]`` binary ground truth.

    Returns:
        ``[...]``: ``1 - (2*sum(p*t) + 1) / (sum(p) + sum(t) + 1)``, ``p = sigmoid(logits)``,
        sums over ``H, W``. An empty target with an all-background prediction
        (very negative logits) gives 0 loss.
    """
    prob = _upcast(logits).sigmoid()
    targets = targets.to(prob.dtype)
    intersection = (prob * targets).sum(dim=(-2, -1))
    denominator = prob.sum(dim=(-2, -1)) + targets.sum(dim=(-2, -1))
    return 1 - (2 * intersection + 1) / (denominator + 1)


def presence_loss(presence_logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE of the presence logit against "target present in the image".

    Args:
        presence_logits: ``[...]`` logits.
        present: ``[...]`` bool or 0/1 float.

    Returns:
        ``[...]``, same shape as ``presence_logits``.
    """
    presence_logits = _upcast(presence_logits)
    return F.binary_cross_entropy_with_logits(
        presence_logits, present.to(presence_logits.dtype), reduction="none"
    )


def segmentation_loss(
    mask_logits: torch.Tensor,
    targets: torch.Tensor,
    presence_logits: Optional[torch.Tensor],
    present: Optional[torch.Tensor],
    mask_loss: str = "bce",
    mask_weight: float = 1.0,
    dice_weight: float = 1.0,
    presence_weight: float = 1.0,
    pos_weight: Optional[float] = None,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> Dict[str, torch.Tensor]:
    """Per-prompt segmentation loss L_seg = L_mask + L_dice + L_presence (weighted).

    Args:
        mask_logits: ``[..., H, W]`` mask logits Z_i (e.g. ``[B, G, K, H, W]``).
        targets: ``[..., H, W]`` binary group masks, broadcastable to ``mask_logits``.
        presence_logits: ``[...]`` presence logits, or ``None`` for a model without a
            presence head (the presence term is then 0).
        present: ``[...]`` whether the target is present (ignored when
            ``presence_logits`` is None).
        mask_loss: ``"bce"`` (uses ``pos_weight``) or ``"focal"`` (uses ``focal_alpha``,
            ``focal_gamma``).
        mask_weight, dice_weight, presence_weight: term coefficients.

    Returns:
        dict of ``[...]`` tensors: ``mask``, ``dice``, ``presence`` and
        ``total = mask_weight*mask + dice_weight*dice + presence_weight*presence``.
    """
    _check_mode(mask_loss, MASK_LOSSES, "mask_loss")
    if mask_loss == "bce":
        mask_term = bce_loss(mask_logits, targets, pos_weight=pos_weight)
    else:
        mask_term = sigmoid_focal_loss(mask_logits, targets, alpha=focal_alpha, gamma=focal_gamma)
    dice_term = dice_loss(mask_logits, targets)
    if presence_logits is None:
        presence_term = torch.zeros_like(dice_term)
    else:
        presence_term = presence_loss(presence_logits, present)
    total = mask_weight * mask_term + dice_weight * dice_term + presence_weight * presence_term
    return {"mask": mask_term, "dice": dice_term, "presence": presence_term, "total": total}


# ----------------------------------------------------------------------------------------
# Group terms
# ----------------------------------------------------------------------------------------


def group_loss(seg_losses: torch.Tensor, tau: float = 1.0, mode: str = "ranking") -> torch.Tensor:
    """Prompt-group loss L_group, computed within each group and averaged over the rest.

    With ``w = softmax(-L/tau)`` over K, ``q = -L`` (detached) and ``q~ = q - mean(q)``:
    ``L_group = -sum_i q~_i * log w_i``.

    Modes (the paper's formula is ambiguous; docs/design.md section 1):
        - ``"ranking"``: q~ detached, ``log w`` carries the gradient. The value is
          ``-sum_i (L_i - Lbar)**2 / tau`` and ``dL_group/dL_k = -(L_k - Lbar)/tau``.
        - ``"detached"``: the formula as printed, everything detached: same value as
          ``ranking``, zero gradient (logged only).
        - ``"softmin"``: ``sum_i stopgrad(w_i) * L_i``, an always-positive soft-min weighting.

    Args:
        seg_losses: ``[..., K]`` per-prompt L_seg.
        tau: softmax temperature (> 0).
        mode: one of ``GROUP_LOSS_MODES``.

    Returns:
        scalar tensor, mean over the leading dims. ``K == 1`` gives 0 (connected to the
        graph with zero gradient).
    """
    _check_mode(mode, GROUP_LOSS_MODES, "group_loss mode")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if seg_losses.shape[-1] <= 1:
        return _zero_like_graph(seg_losses)

    if mode == "softmin":
        weights = torch.softmax(-seg_losses.detach() / tau, dim=-1)
        return (weights * seg_losses).sum(dim=-1).mean()

    quality = -seg_losses.detach()
    centred_quality = quality - quality.mean(dim=-1, keepdim=True)
    source = seg_losses.detach() if mode == "detached" else seg_losses
    log_weights = torch.log_softmax(-source / tau, dim=-1)
    value = -(centred_quality * log_weights).sum(dim=-1).mean()
    if mode == "detached":
        # Zero gradient, but keep backward()/DDP working if the caller adds it to the loss.
        value = value + _zero_like_graph(seg_losses)
    return value


def effective_prompt_weights(
    seg_losses: torch.Tensor,
    lam: float = 1.0,
    tau: float = 1.0,
    mode: str = "ranking",
) -> torch.Tensor:
    """Total weight each prompt's L_seg gets in ``mean_i L_seg(i) + lam * L_group``,
    per group (multiply by 1/N for N leading elements to get the gradient of
    ``pgat_objective``'s loss).

    - ``ranking``: ``1/K - lam * (L_k - Lbar) / tau`` (can be negative);
    - ``softmin``: ``1/K + lam * w_k`` with ``w = softmax(-L/tau)``;
    - ``detached``: ``1/K``.

    Args:
        seg_losses: ``[..., K]``.

    Returns:
        ``[..., K]`` detached weights (for logging the smallest one).
    """
    _check_mode(mode, GROUP_LOSS_MODES, "group_loss mode")
    losses = _upcast(seg_losses.detach())
    num_prompts = losses.shape[-1]
    base = torch.full_like(losses, 1.0 / num_prompts)
    if mode == "ranking":
        return base - lam * (losses - losses.mean(dim=-1, keepdim=True)) / tau
    if mode == "softmin":
        return base + lam * torch.softmax(-losses / tau, dim=-1)
    return base


def consistency_loss(mask_logits: torch.Tensor, mode: str = "reference") -> torch.Tensor:
    """Consistency of the K mask logits of one prompt group.

    - ``"reference"``: ``1/(K-1) * sum_{i>=2} mean_pixels (Z_i - stopgrad(Z_1))**2``; the
      collator shuffles prompts, so the reference Z_1 is a random group member.
    - ``"pairwise"``: mean over pairs ``i < j`` of ``mean_pixels (Z_i - Z_j)**2``, no
      stop-gradient (the paper's ablation).

    Args:
        mask_logits: ``[..., K, H, W]``.
        mode: one of ``CONSISTENCY_MODES``.

    Returns:
        scalar tensor, mean over the leading dims; ``K == 1`` gives 0 (zero gradient).
    """
    _check_mode(mode, CONSISTENCY_MODES, "consistency mode")
    if mask_logits.dim() < 3:
        raise ValueError(f"mask_logits must be [..., K, H, W], got shape {tuple(mask_logits.shape)}")
    num_prompts = mask_logits.shape[-3]
    if num_prompts <= 1:
        return _zero_like_graph(mask_logits)
    logits = _upcast(mask_logits)
    if mode == "reference":
        reference = logits[..., :1, :, :].detach()
        per_prompt = (logits[..., 1:, :, :] - reference).pow(2).mean(dim=(-2, -1))  # [..., K-1]
        return per_prompt.mean()
    first, second = torch.triu_indices(num_prompts, num_prompts, offset=1, device=logits.device)
    diff = logits.index_select(-3, first) - logits.index_select(-3, second)  # [..., P, H, W]
    return diff.pow(2).mean(dim=(-2, -1)).mean()


# ----------------------------------------------------------------------------------------
# The combined objective
# ----------------------------------------------------------------------------------------


def pgat_objective(
    seg_losses: torch.Tensor,
    mask_logits: torch.Tensor,
    lam: float = 1.0,
    beta: float = 0.1,
    tau: float = 1.0,
    group_mode: str = "ranking",
    consistency_mode: str = "reference",
) -> Dict[str, torch.Tensor]:
    """PGAT objective ``loss = mean(L_seg) + lam * L_group + beta * L_cons``.

    Args:
        seg_losses: ``[..., K]`` per-prompt L_seg (e.g. ``segmentation_loss(...)["total"]``).
        mask_logits: ``[..., K, H, W]`` the prompts' mask logits.
        lam, beta: coefficients of L_group and L_cons. A term whose coefficient is 0 is
            left out of the graph; its value is still computed (under ``no_grad``) so that
            every term is always logged.
        tau: temperature of the group weights.
        group_mode: see ``group_loss``; consistency_mode: see ``consistency_loss``.

    Returns:
        dict of scalar tensors: ``loss`` (carries the gradient), and detached ``seg_loss``,
        ``group_loss``, ``consistency_loss``, ``min_prompt_weight`` (the smallest
        ``effective_prompt_weights`` entry; negative values mean the ranking term pushes
        that prompt's loss up).
    """
    _check_mode(group_mode, GROUP_LOSS_MODES, "group_loss mode")
    _check_mode(consistency_mode, CONSISTENCY_MODES, "consistency mode")
    if seg_losses.shape[-1] != mask_logits.shape[-3]:
        raise ValueError(
            f"seg_losses {tuple(seg_losses.shape)} and mask_logits {tuple(mask_logits.shape)} "
            "disagree on K"
        )

    seg_term = seg_losses.mean()
    loss = seg_term

    if lam != 0:
        group_term = group_loss(seg_losses, tau=tau, mode=group_mode)
        loss = loss + lam * group_term
    else:
        with torch.no_grad():
            group_term = group_loss(seg_losses, tau=tau, mode=group_mode)

    if beta != 0:
        cons_term = consistency_loss(mask_logits, mode=consistency_mode)
        loss = loss + beta * cons_term
    else:
        with torch.no_grad():
            cons_term = consistency_loss(mask_logits, mode=consistency_mode)

    min_weight = effective_prompt_weights(seg_losses, lam=lam, tau=tau, mode=group_mode).min()
    return {
        "loss": loss,
        "seg_loss": seg_term.detach(),
        "group_loss": group_term.detach(),
        "consistency_loss": cons_term.detach(),
        "min_prompt_weight": min_weight,
    }


# ----------------------------------------------------------------------------------------
# The training loss as one object (trainer and bench call the same thing)
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PGATLoss:
    """The loss PGATTrainer minimises, from model outputs to named terms.

    Mask logits ``[B, G, K, h, w]`` are upsampled to the targets' ``[B, G, S, S]`` (small nuclei
    vanish when masks are downsampled to the logits), L_seg is computed per prompt, and
    ``pgat_objective`` adds the group and consistency terms. ``from_args`` reads every weight from
    ``PGATTrainingArguments``, so `pgat-hf bench` times exactly the training loss.
    """

    mask_loss: str = "bce"
    mask_weight: float = 1.0
    dice_weight: float = 1.0
    presence_weight: float = 1.0
    pos_weight: Optional[float] = 3.0
    lam: float = 1.0
    beta: float = 0.1
    tau: float = 1.0
    group_mode: str = "softmin"
    consistency_mode: str = "reference"

    @classmethod
    def from_args(cls, args) -> "PGATLoss":
        return cls(mask_loss=args.mask_loss, mask_weight=args.mask_loss_weight, dice_weight=args.dice_loss_weight,
                   presence_weight=args.presence_loss_weight,
                   pos_weight=args.bce_pos_weight if args.mask_loss == "bce" else None,
                   lam=args.lambda_group, beta=args.beta_consistency, tau=args.tau, group_mode=args.group_loss_mode,
                   consistency_mode=args.consistency_mode)

    def without_group_terms(self) -> "PGATLoss":
        """The same L_seg with λ = β = 0: plain fine-tuning (K = 1)."""
        return replace(self, lam=0.0, beta=0.0)

    def __call__(self, mask_logits: torch.Tensor, presence_logits: Optional[torch.Tensor], target_masks: torch.Tensor,
                 present: torch.Tensor) -> tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        """mask_logits [B, G, K, h, w], presence_logits [B, G, K] (None: no presence head),
        target_masks [B, G, S, S], present [B, G] -> (pgat_objective terms, segmentation_loss terms)."""
        num_prompts = mask_logits.shape[2]
        size = target_masks.shape[-2:]
        logits = mask_logits.float()
        upsampled = F.interpolate(logits.flatten(0, 2)[:, None], size=size, mode="bilinear", align_corners=False)
        upsampled = upsampled.reshape(*logits.shape[:3], *size)
        seg = segmentation_loss(
            upsampled, target_masks[:, :, None].expand_as(upsampled),
            None if presence_logits is None else presence_logits.float(),
            present[:, :, None].expand(-1, -1, num_prompts), mask_loss=self.mask_loss, mask_weight=self.mask_weight,
            dice_weight=self.dice_weight, presence_weight=self.presence_weight, pos_weight=self.pos_weight,
        )
        terms = pgat_objective(seg["total"], logits, lam=self.lam, beta=self.beta, tau=self.tau,
                               group_mode=self.group_mode, consistency_mode=self.consistency_mode)
        return terms, seg
