"""Each loss of pgat_hf.training.losses against hand-computed values on tiny tensors."""

import math

import pytest
import torch

from pgat_hf.training.losses import (
    bce_loss,
    consistency_loss,
    dice_loss,
    effective_prompt_weights,
    group_loss,
    pgat_objective,
    presence_loss,
    segmentation_loss,
    sigmoid_focal_loss,
)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# 2x2 mask used throughout: logits and targets, plus hand-written per-pixel values.
LOGITS = [[2.0, -1.0], [0.0, 3.0]]
TARGETS = [[1.0, 0.0], [1.0, 0.0]]


def pixels():
    for r in range(2):
        for c in range(2):
            yield LOGITS[r][c], TARGETS[r][c]


def bce_pixel(x, t, pos_weight=1.0):
    p = sig(x)
    return -(pos_weight * t * math.log(p) + (1 - t) * math.log(1 - p))


def tensors():
    return torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGETS, dtype=torch.float64)


# ---------------------------------------------------------------- per-prompt losses


def test_bce_matches_hand_values():
    logits, targets = tensors()
    expected = sum(bce_pixel(x, t) for x, t in pixels()) / 4
    assert bce_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    expected_pw = sum(bce_pixel(x, t, 3.0) for x, t in pixels()) / 4
    assert bce_loss(logits, targets, pos_weight=3.0).item() == pytest.approx(expected_pw, rel=1e-6)


def test_focal_matches_hand_values():
    logits, targets = tensors()

    def focal(alpha, gamma):
        total = 0.0
        for x, t in pixels():
            p = sig(x)
            p_t = p * t + (1 - p) * (1 - t)
            term = bce_pixel(x, t) * (1 - p_t) ** gamma
            if alpha >= 0:
                term *= alpha * t + (1 - alpha) * (1 - t)
            total += term
        return total / 4

    assert sigmoid_focal_loss(logits, targets).item() == pytest.approx(focal(0.25, 2.0), rel=1e-6)
    assert sigmoid_focal_loss(logits, targets, alpha=-1).item() == pytest.approx(focal(-1, 2.0), rel=1e-6)
    # gamma 0, no alpha: plain BCE.
    assert sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0.0).item() == pytest.approx(
        bce_loss(logits, targets).item(), rel=1e-6
    )


def test_dice_matches_hand_values():
    logits, targets = tensors()
    probs = [sig(x) for x, _ in pixels()]
    ts = [t for _, t in pixels()]
    inter = sum(p * t for p, t in zip(probs, ts))
    expected = 1 - (2 * inter + 1) / (sum(probs) + sum(ts) + 1)
    assert dice_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_dice_convention_empty_and_perfect():
    empty = torch.zeros(2, 2)
    # Both empty (prediction confidently background) -> 1 - 1/1 = 0.
    assert dice_loss(torch.full((2, 2), -50.0), empty).item() == pytest.approx(0.0, abs=1e-6)
    # Empty target, full prediction -> 1 - 1/(4+1) = 0.8.
    assert dice_loss(torch.full((2, 2), 50.0), empty).item() == pytest.approx(0.8, abs=1e-6)
    # Perfect full prediction -> 1 - 9/9 = 0.
    full = torch.ones(2, 2)
    assert dice_loss(torch.full((2, 2), 50.0), full).item() == pytest.approx(0.0, abs=1e-6)


def test_per_prompt_losses_keep_leading_dims():
    logits = torch.randn(2, 3, 4, 5, 5)
    targets = (torch.rand(2, 3, 4, 5, 5) > 0.5).float()
    for fn in (bce_loss, sigmoid_focal_loss, dice_loss):
        assert fn(logits, targets).shape == (2, 3, 4)
    # Each slice equals the function on that slice alone.
    assert torch.allclose(dice_loss(logits, targets)[1, 2, 3], dice_loss(logits[1, 2, 3], targets[1, 2, 3]))


def test_presence_loss_elementwise():
    logits = torch.tensor([[1.5, -0.5], [0.0, 2.0]], dtype=torch.float64)
    present = torch.tensor([[True, False], [True, True]])
    out = presence_loss(logits, present)
    assert out.shape == logits.shape
    expected = [[-math.log(sig(1.5)), -math.log(1 - sig(-0.5))], [-math.log(0.5), -math.log(sig(2.0))]]
    assert torch.allclose(out, torch.tensor(expected, dtype=out.dtype), atol=1e-6)


@pytest.mark.parametrize("mask_loss", ["bce", "focal"])
def test_segmentation_loss_combination(mask_loss):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    targets = (torch.rand(2, 3, 4, 4) > 0.5).float()
    presence_logits = torch.randn(2, 3)
    present = torch.tensor([[1, 0, 1], [1, 1, 0]])
    out = segmentation_loss(
        logits, targets, presence_logits, present, mask_loss=mask_loss,
        mask_weight=2.0, dice_weight=0.5, presence_weight=3.0, pos_weight=3.0,
    )
    for key in ("mask", "dice", "presence", "total"):
        assert out[key].shape == (2, 3)
    mask = bce_loss(logits, targets, 3.0) if mask_loss == "bce" else sigmoid_focal_loss(logits, targets)
    assert torch.allclose(out["mask"], mask)
    assert torch.allclose(out["dice"], dice_loss(logits, targets))
    assert torch.allclose(out["presence"], presence_loss(presence_logits, present))
    assert torch.allclose(out["total"], 2.0 * out["mask"] + 0.5 * out["dice"] + 3.0 * out["presence"])


def test_segmentation_loss_unknown_mask_loss():
    with pytest.raises(ValueError):
        segmentation_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.zeros(1), torch.zeros(1), mask_loss="l2")


# ---------------------------------------------------------------- group loss


def test_group_ranking_value_and_gradient():
    tau = 0.5
    losses = torch.tensor([1.0, 2.0, 4.5], dtype=torch.float64, requires_grad=True)
    mean = (1.0 + 2.0 + 4.5) / 3
    value = group_loss(losses, tau=tau, mode="ranking")
    expected = -sum((v - mean) ** 2 for v in (1.0, 2.0, 4.5)) / tau
    assert value.item() == pytest.approx(expected, rel=1e-9)
    value.backward()
    expected_grad = [-(v - mean) / tau for v in (1.0, 2.0, 4.5)]
    assert torch.allclose(losses.grad, torch.tensor(expected_grad, dtype=torch.float64))


def test_group_ranking_literal_formula():
    # -sum q~ log softmax(-L/tau), written out by hand.
    vals, tau = [0.3, 0.9], 2.0
    q = [-v for v in vals]
    qbar = sum(q) / 2
    z = sum(math.exp(-v / tau) for v in vals)
    expected = -sum((qi - qbar) * math.log(math.exp(-v / tau) / z) for qi, v in zip(q, vals))
    assert group_loss(torch.tensor(vals, dtype=torch.float64), tau=tau).item() == pytest.approx(expected)


def test_group_detached_zero_gradient():
    losses = torch.tensor([1.0, 2.0, 4.5], requires_grad=True)
    value = group_loss(losses, mode="detached")
    assert value.item() == pytest.approx(group_loss(losses.detach(), mode="ranking").item(), rel=1e-6)
    if value.requires_grad:
        value.backward()
    assert losses.grad is None or torch.all(losses.grad == 0)


def test_group_softmin_value_and_gradient():
    vals, tau = [1.0, 2.0, 0.5], 0.7
    losses = torch.tensor(vals, dtype=torch.float64, requires_grad=True)
    z = sum(math.exp(-v / tau) for v in vals)
    w = [math.exp(-v / tau) / z for v in vals]
    value = group_loss(losses, tau=tau, mode="softmin")
    assert value.item() == pytest.approx(sum(wi * v for wi, v in zip(w, vals)))
    value.backward()
    assert torch.allclose(losses.grad, torch.tensor(w, dtype=torch.float64))


def test_group_k1_is_zero_with_grad():
    losses = torch.tensor([[0.7], [1.3]], requires_grad=True)
    for mode in ("ranking", "detached", "softmin"):
        value = group_loss(losses, mode=mode)
        assert value.item() == 0.0
        value.backward()
        assert torch.all(losses.grad == 0)
        losses.grad = None


def test_group_leading_dims_averaged():
    torch.manual_seed(1)
    losses = torch.rand(2, 3, 4)  # [B, G, K]
    per_group = [group_loss(losses[b, g]) for b in range(2) for g in range(3)]
    assert group_loss(losses).item() == pytest.approx(torch.stack(per_group).mean().item(), rel=1e-5)
    hand = -((losses - losses.mean(-1, keepdim=True)) ** 2).sum(-1).mean()
    assert group_loss(losses).item() == pytest.approx(hand.item(), rel=1e-5)


def test_group_unknown_mode():
    with pytest.raises(ValueError):
        group_loss(torch.rand(3), mode="bogus")
    with pytest.raises(ValueError):
        effective_prompt_weights(torch.rand(3), mode="bogus")


# ---------------------------------------------------------------- consistency


def test_consistency_reference_value_and_stopgrad():
    z1 = [[0.0, 1.0], [2.0, 3.0]]
    z2 = [[1.0, 1.0], [0.0, 3.0]]  # squared diffs 1,0,4,0 -> mean 1.25
    z3 = [[0.0, 3.0], [2.0, 1.0]]  # squared diffs 0,4,0,4 -> mean 2.0
    logits = torch.tensor([z1, z2, z3], requires_grad=True)
    value = consistency_loss(logits, mode="reference")
    assert value.item() == pytest.approx((1.25 + 2.0) / 2)
    value.backward()
    assert torch.all(logits.grad[0] == 0)
    assert logits.grad[1].abs().sum() > 0 and logits.grad[2].abs().sum() > 0


def test_consistency_pairwise_value_and_grads():
    z1 = [[0.0, 1.0], [2.0, 3.0]]
    z2 = [[1.0, 1.0], [0.0, 3.0]]
    z3 = [[0.0, 3.0], [2.0, 1.0]]
    # pairs: (1,2) 1.25; (1,3) 2.0; (2,3) diffs 1,2,2,2 -> squares 1,4,4,4 -> 3.25
    logits = torch.tensor([z1, z2, z3], requires_grad=True)
    value = consistency_loss(logits, mode="pairwise")
    assert value.item() == pytest.approx((1.25 + 2.0 + 3.25) / 3)
    value.backward()
    for k in range(3):
        assert logits.grad[k].abs().sum() > 0


def test_consistency_k1_and_leading_dims():
    single = torch.randn(2, 3, 1, 4, 4, requires_grad=True)
    for mode in ("reference", "pairwise"):
        assert consistency_loss(single, mode=mode).item() == 0.0
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 3, 4, 4)  # [B, G, K, H, W]
    for mode in ("reference", "pairwise"):
        per_group = torch.stack([consistency_loss(logits[b, g], mode=mode) for b in range(2) for g in range(3)])
        assert consistency_loss(logits, mode=mode).item() == pytest.approx(per_group.mean().item(), rel=1e-5)


def test_consistency_unknown_mode():
    with pytest.raises(ValueError):
        consistency_loss(torch.randn(3, 2, 2), mode="bogus")


# ---------------------------------------------------------------- objective


def test_pgat_objective_combination():
    torch.manual_seed(3)
    seg = torch.rand(2, 3, 3)
    logits = torch.randn(2, 3, 3, 4, 4)
    out = pgat_objective(seg, logits, lam=0.7, beta=0.2, tau=0.5)
    assert set(out) == {"loss", "seg_loss", "group_loss", "consistency_loss", "min_prompt_weight"}
    assert out["seg_loss"].item() == pytest.approx(seg.mean().item(), rel=1e-6)
    assert out["group_loss"].item() == pytest.approx(group_loss(seg, tau=0.5).item(), rel=1e-6)
    assert out["consistency_loss"].item() == pytest.approx(consistency_loss(logits).item(), rel=1e-6)
    expected = out["seg_loss"] + 0.7 * out["group_loss"] + 0.2 * out["consistency_loss"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    weights = effective_prompt_weights(seg, lam=0.7, tau=0.5)
    assert out["min_prompt_weight"].item() == pytest.approx(weights.min().item())


def test_pgat_objective_zero_coefficients_reduce_to_seg_loss():
    torch.manual_seed(4)
    seg = torch.rand(2, 3, requires_grad=True)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = pgat_objective(seg, logits, lam=0.0, beta=0.0)
    assert out["loss"].item() == pytest.approx(seg.mean().item())
    # The terms are still logged.
    assert out["group_loss"].item() == pytest.approx(group_loss(seg.detach()).item(), rel=1e-6)
    assert out["consistency_loss"].item() > 0
    assert out["min_prompt_weight"].item() == pytest.approx(1 / 3)
    out["loss"].backward()
    assert torch.allclose(seg.grad, torch.full_like(seg, 1 / 6))
    assert logits.grad is None or torch.all(logits.grad == 0)
    for key in ("seg_loss", "group_loss", "consistency_loss", "min_prompt_weight"):
        assert not out[key].requires_grad


def test_pgat_objective_k1_is_plain_finetuning():
    seg = torch.rand(4, 1, requires_grad=True)
    logits = torch.randn(4, 1, 4, 4, requires_grad=True)
    out = pgat_objective(seg, logits)  # default lam, beta
    assert out["loss"].item() == pytest.approx(seg.mean().item())
    assert out["group_loss"].item() == 0.0 and out["consistency_loss"].item() == 0.0
    out["loss"].backward()
    assert torch.allclose(seg.grad, torch.full_like(seg, 0.25))


@pytest.mark.parametrize("mode", ["ranking", "softmin", "detached"])
def test_effective_weights_match_autograd(mode):
    torch.manual_seed(5)
    lam, tau = 0.8, 0.6
    seg = (torch.rand(2, 3, 3, dtype=torch.float64) * 2).requires_grad_()  # [B, G, K]
    logits = torch.randn(2, 3, 3, 4, 4, dtype=torch.float64)
    out = pgat_objective(seg, logits, lam=lam, beta=0.1, tau=tau, group_mode=mode)
    out["loss"].backward()
    weights = effective_prompt_weights(seg, lam=lam, tau=tau, mode=mode)
    assert weights.shape == seg.shape
    assert torch.allclose(seg.grad, weights.to(seg.grad.dtype) / 6, atol=1e-6)


def test_effective_weights_hand_values():
    losses = torch.tensor([1.0, 2.0, 3.0])
    ranking = effective_prompt_weights(losses, lam=1.0, tau=1.0, mode="ranking")
    assert torch.allclose(ranking, torch.tensor([1 / 3 + 1, 1 / 3, 1 / 3 - 1]))
    assert torch.allclose(effective_prompt_weights(losses, mode="detached"), torch.full((3,), 1 / 3))
    z = sum(math.exp(-v) for v in (1.0, 2.0, 3.0))
    softmin = [1 / 3 + math.exp(-v) / z for v in (1.0, 2.0, 3.0)]
    assert torch.allclose(effective_prompt_weights(losses, mode="softmin"), torch.tensor(softmin))


def test_pgat_objective_unknown_modes():
    seg, logits = torch.rand(3), torch.randn(3, 2, 2)
    with pytest.raises(ValueError):
        pgat_objective(seg, logits, group_mode="bogus")
    with pytest.raises(ValueError):
        pgat_objective(seg, logits, consistency_mode="bogus")
    # Modes are validated even when their coefficient is 0.
    with pytest.raises(ValueError):
        pgat_objective(seg, logits, lam=0.0, group_mode="bogus")


def test_one_loss_object_for_the_trainer_and_the_bench(tmp_path):
    """PGATLoss.from_args is what PGATTrainer.compute_loss and `pgat-hf bench` both call, with the
    demo recipe's weights (focal × 20 + dice + presence, softmin λ=1, β=0.1)."""
    from pgat_hf.commands import step_benchmark as bench
    from pgat_hf.training.losses import PGATLoss, pgat_objective, segmentation_loss
    from pgat_hf.train import parse_args

    _, _, demo = parse_args(["--config", "pgat_hf/recipes/demo.yaml", "--output_dir", str(tmp_path)])
    loss = PGATLoss.from_args(demo)
    assert loss == bench.demo_loss()
    assert (loss.mask_loss, loss.mask_weight, loss.pos_weight, loss.group_mode, loss.lam, loss.beta) == (
        "focal", 20.0, None, "softmin", 1.0, 0.1)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 3, 8, 8, generator=generator)
    presence = torch.randn(2, 3, 3, generator=generator)
    targets = (torch.rand(2, 3, 16, 16, generator=generator) > 0.6).float()
    present = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    terms, _ = loss(logits, presence, targets, present)
    upsampled = torch.nn.functional.interpolate(logits.flatten(0, 2)[:, None], size=(16, 16), mode="bilinear",
                                                align_corners=False).reshape(2, 3, 3, 16, 16)
    seg = segmentation_loss(upsampled, targets[:, :, None].expand_as(upsampled), presence,
                            present[:, :, None].expand(-1, -1, 3), mask_loss="focal", mask_weight=20.0)
    expected = pgat_objective(seg["total"], logits, lam=1.0, beta=0.1, group_mode="softmin")["loss"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert bench.pgat_loss(logits, presence, targets, present).item() == pytest.approx(expected.item(), rel=1e-6)
    # K = 1: the bench's baseline is L_seg alone
    one = bench.pgat_loss(logits[:, :, :1], presence[:, :, :1], targets, present)
    assert one.item() == pytest.approx(seg["total"][:, :, :1].mean().item(), rel=1e-6)
