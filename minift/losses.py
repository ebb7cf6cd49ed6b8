"""Training losses, written out from their formulas (PyTorch only, differentiable).

Reference: the definitions of ``torch.nn.functional.cross_entropy``,
``binary_cross_entropy_with_logits`` and ``mse_loss`` (PyTorch docs); label smoothing
follows Szegedy et al. 2016, "Rethinking the Inception Architecture", section 7.
The tests check values *and* gradients against ``torch.nn.functional``.

Cross-entropy, logits x (N, C), class targets y_i in {0..C-1} or ``ignore_index``,
class weights w (C,), smoothing eps:

    log p_ic = x_ic - m_i - log sum_c' exp(x_ic' - m_i),  m_i = max_c x_ic
                     (the log-sum-exp trick: exp never sees a positive number)
    L_i = (1 - eps) * (-w_{y_i} log p_{i,y_i}) + (eps / C) * sum_c (-w_c log p_ic)
    mean = sum_i L_i / sum_{i not ignored} w_{y_i}        (a weighted mean)

The smoothing term weights each class by its *own* w_c (as PyTorch does).
With probability targets q (same shape as x) the loss is -sum_c w_c q'_ic log p_ic,
q' = (1 - eps) q + eps / C, and the mean divides by N.

At the edges the result is torch's (spec/metrics.md section 12), term by term:
- eps = 0 computes the first term only.  A class masked with a -inf logit has p = 0 and
  0 * log 0 = NaN in the smoothing sum, so computing it "times 0" would turn a finite loss into NaN.
- eps > 0 with a -inf logit: the smoothing sum is +inf, so the loss is inf (its gradient stays finite).
- mean = (1 - eps) * sum nll / sum w_y + (eps / C) * sum smooth / sum w_y, each term divided on its own
  as torch does: when every present class has weight 0 the first is 0 / 0 = NaN, so the mean is NaN.
- class-index targets must be int64.  torch takes uint8 on some paths only ((N, C) logits, but not
  (N, C, d1, ...) nor weights with smoothing) and rejects int32 / int16 / int8; minift takes the one rule
  that holds on every path and says so in the error.

Binary cross-entropy on logits x, targets y, pos_weight p, weight v:

    L = v * [ p * y * softplus(-x) + (1 - y) * softplus(x) ]
    softplus(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|)

softplus(-x) = -log sigmoid(x) and softplus(x) = -log(1 - sigmoid(x)); the right-hand
form never overflows.  The mean is over all elements.  Since softplus(x) = x + softplus(-x),
the code computes the equal form torch uses (spec/metrics.md section 13):

    L = v * [ (1 - y) * x + (1 + (p - 1) y) * softplus(-x) ]

which gives torch's result at infinite logits too: x = +inf, y = 0 -> inf (a confident wrong answer),
and NaN where torch's 0 * inf is NaN (x = +inf with y = 1, x = -inf with any y).

MSE: mean((x - y)^2).  Shapes must match exactly: a (N, 1) prediction against a (N,)
target would silently broadcast to (N, N) in torch, so here it is an error.

Every loss is computed in fp32 (or fp64 for fp64 inputs): bf16 / fp16 inputs, as autocast hands them over,
are cast up first, so mixed precision changes the forward pass, not the loss.
"""
import torch

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.sum() / loss.numel()  # 0 / 0 = nan for an empty batch, like torch
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_float(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least fp32: autocast hands over bf16 / fp16 logits, whose log-probabilities and sums
    would lose most of their digits (bf16 keeps 8 bits), so every loss is computed in fp32."""
    if not torch.is_floating_point(t):
        raise TypeError(f"{name} must be a floating point tensor, got {t.dtype}")
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Stable log-softmax along ``dim``: x - m - log(sum(exp(x - m))), m = max(x)."""
    # m is a constant shift: its gradient would cancel anyway, so keep it out of autograd.
    m = x.amax(dim=dim, keepdim=True).detach()
    shifted = x - m
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def _check_cross_entropy_args(logits, label_smoothing, reduction):
    """`logits` as a float tensor with a class dimension; the smoothing and the reduction within their ranges."""
    logits = _check_float("logits", logits)
    if logits.dim() < 1:
        raise ValueError("logits must have a class dimension")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return logits


def cross_entropy(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of ``logits`` (N, C) or (N, C, d1, ...) against class indices or probabilities.

    ``target`` is (N,) / (N, d1, ...) of int64 class indices, or a float tensor of the same
    shape as ``logits`` holding class probabilities.  Returns a scalar, or (N, d1, ...) for
    ``reduction="none"`` (0 at ignored positions).
    """
    logits = _check_cross_entropy_args(logits, label_smoothing, reduction)
    if logits.dim() == 1:  # one unbatched example: logits (C,), target a scalar (or (C,) probabilities)
        loss = cross_entropy(logits[None], target[None], weight, ignore_index, label_smoothing, reduction)
        return loss[0] if reduction == "none" else loss
    C = logits.shape[1]
    if weight is None:
        weight = logits.new_ones(C)
    if weight.shape != (C,):
        raise ValueError(f"weight must have shape ({C},), got {tuple(weight.shape)}")
    weight = weight.to(logits.dtype)
    batch_shape = (logits.shape[0],) + tuple(logits.shape[2:])    # (N, d1, ...)
    # Move the class dimension last and flatten: (N, C, d1, ...) -> (M, C), M = N * d1 * ...
    x = logits.movedim(1, -1).reshape(-1, C)
    logp = log_softmax(x, dim=-1)                                  # (M, C)

    if torch.is_floating_point(target):  # probability targets
        if target.shape != logits.shape:
            raise ValueError(f"probability target shape {tuple(target.shape)} != logits {tuple(logits.shape)}")
        q = target.movedim(1, -1).reshape(-1, C).to(logits.dtype)
        q = (1 - label_smoothing) * q + label_smoothing / C
        loss = -(weight * q * logp).sum(dim=-1)                    # (M,)
        return _reduce(loss.reshape(batch_shape), reduction)       # the mean divides by M

    if target.dtype != torch.int64:
        raise TypeError(f"class-index targets must be int64 (torch.long), got {target.dtype}: "
                        "pass target.long(), or a float tensor shaped like logits for probabilities")
    if tuple(target.shape) != batch_shape:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}: "
                         f"expected {batch_shape}")
    y = target.reshape(-1).long()                                  # (M,)
    keep = y != ignore_index                                       # (M,) bool
    bad = keep & ((y < 0) | (y >= C))
    if bad.any():
        raise IndexError(f"target {int(y[bad][0])} is out of bounds for {C} classes")
    y_safe = torch.where(keep, y, torch.zeros_like(y))            # any valid index at ignored rows
    w_y = weight[y_safe]                                           # (M,)
    zero = torch.zeros_like(logp[:, 0])
    nll = -w_y * logp.gather(1, y_safe.unsqueeze(1)).squeeze(1)    # (M,) -w_y log p_y
    nll = torch.where(keep, nll, zero)                             # ignored rows contribute 0
    if label_smoothing > 0:  # at eps = 0 the smoothing sum is not computed: 0 * inf would be NaN
        smooth = torch.where(keep, -(logp * weight).sum(dim=-1), zero)  # (M,) sum_c -w_c log p_c
    # Reduce each term, then mix them (torch's order: a sum can overflow to inf before eps / C scales it).
    reduce = {"none": lambda t: t.reshape(batch_shape), "sum": torch.sum,
              # weighted mean; 0 / 0 = nan when every target is ignored or weighted 0
              "mean": lambda t: t.sum() / torch.where(keep, w_y, zero).sum()}[reduction]
    if label_smoothing == 0:
        return reduce(nll)
    return (1 - label_smoothing) * reduce(nll) + (label_smoothing / C) * reduce(smooth)


def _softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|), never overflowing.

    max(z, 0) is written z / 2 + |z| / 2 so that autograd gives the exact derivative
    sigmoid(0) = 1/2 at z = 0 (torch takes d|z|/dz = 0 there); halving before the sum keeps
    finfo.max from overflowing, and z = -inf is set to 0 apart, since -inf + inf is NaN.
    """
    relu = torch.where(z == float("-inf"), torch.zeros_like(z), 0.5 * z + 0.5 * z.abs())  # -inf + inf = NaN
    return relu + torch.log1p(torch.exp(-z.abs()))


def binary_cross_entropy_with_logits(logits, target, weight=None, pos_weight=None, reduction="mean"):
    """Sigmoid + binary cross-entropy in one stable step; shapes of logits and target must match.

    ``pos_weight`` (broadcast over the last dimension) scales the positive term,
    ``weight`` rescales every element.  The mean is over all elements.
    """
    logits = _check_float("logits", logits)
    target = _check_float("target", target)
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} must equal logits shape {tuple(logits.shape)}")
    # p y softplus(-x) + (1 - y) softplus(x), written with softplus(x) = x + softplus(-x) as torch does
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target  # pos_weight (L,) broadcasts
    loss = (1 - target) * logits + log_weight * _softplus(-logits)  # same shape as logits
    if weight is not None:
        loss = weight * loss
    return _reduce(loss, reduction)


def mse(pred, target, reduction="mean"):
    """Mean squared error; ``pred`` and ``target`` must have identical shapes (no broadcasting)."""
    pred = _check_float("pred", pred)
    target = _check_float("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}; "
                         "squeeze a (N, 1) regression head to (N,) first")
    diff = pred - target
    # d * d, not d ** 2: autograd then gives d/n + d/n, which like torch's (2/n) d stays finite up to finfo.max
    return _reduce(diff * diff, reduction)


# --- Focal losses and the L1 / L2 penalties ------------------------------------------------------
# Focal loss: Lin et al. 2017, "Focal Loss for Dense Object Detection", eq. 5; the sigmoid form is
# torchvision.ops.sigmoid_focal_loss (tests check both, values and gradients).
#
#     FL = -alpha_t (1 - p_t)^gamma log p_t
#
# p_t is the probability of the true class (softmax) or of the true side of each label (sigmoid):
# confident, correct examples (p_t near 1) are down-weighted by (1 - p_t)^gamma; gamma = 0 is
# cross-entropy.  The means divide by the number of rows (softmax) or elements (sigmoid), alpha or not.


def _focal_weight(one_minus_pt: torch.Tensor, gamma: float) -> torch.Tensor:
    """(1 - p_t)^gamma, with a finite gradient where 1 - p_t = 0 (a saturated logit).

    d/db b^gamma = gamma b^(gamma - 1) is infinite at b = 0 for 0 < gamma < 1, and inf * 0 = nan in the chain
    rule; the loss's true derivative there is 0.  So b = 0 takes the constant 0^gamma (1 if gamma = 0, else 0)
    and a safe base 1 inside the power, whose gradient then never reaches the logits.
    """
    positive = one_minus_pt > 0
    safe = torch.where(positive, one_minus_pt, torch.ones_like(one_minus_pt))
    return torch.where(positive, safe**gamma, torch.full_like(safe, 0.0**gamma))


def focal_loss(logits, target, gamma=2.0, alpha=None, reduction="mean"):
    """Softmax focal loss of ``logits`` (N, C) against class indices ``target`` (N,) (int64).

    L_i = -alpha_{y_i} (1 - p_{i,y_i})^gamma log p_{i,y_i},  log p = log_softmax(logits),
    1 - p_t computed as -expm1(log p_t) (no cancellation near p_t = 1).  ``alpha``: None (1 for every
    class), a float (the same factor for all) or a (C,) tensor of per-class factors.  ``gamma >= 0``.
    """
    logits = _check_float("logits", logits)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (N, C) and target (N,), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if target.dtype != torch.int64:
        raise TypeError(f"class-index targets must be int64, got {target.dtype}")
    C = logits.shape[1]
    if ((target < 0) | (target >= C)).any():
        raise IndexError(f"a target is out of bounds for {C} classes: {target.tolist()}")
    logp_t = log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)   # (N,)
    loss = -_focal_weight(-torch.expm1(logp_t), gamma) * logp_t                  # (N,)
    if alpha is not None:
        alpha = torch.as_tensor(alpha, dtype=logits.dtype, device=logits.device)
        if alpha.dim() == 1 and alpha.shape != (C,):
            raise ValueError(f"alpha must be a float or have shape ({C},), got {tuple(alpha.shape)}")
        loss = (alpha[target] if alpha.dim() == 1 else alpha) * loss
    return _reduce(loss, reduction)


def sigmoid_focal_loss(logits, target, gamma=2.0, alpha=None, reduction="mean"):
    """Sigmoid focal loss for binary or multi-label logits; ``target`` (same shape) in [0, 1].

    L = alpha_t (1 - p_t)^gamma BCE(x, t),  p = sigmoid(x),  p_t = p t + (1 - p)(1 - t),
    alpha_t = alpha t + (1 - alpha)(1 - t), BCE the stable ``binary_cross_entropy_with_logits``.
    1 - p_t is written p (1 - t) + (1 - p) t with 1 - p = sigmoid(-x), exact for large |x|.
    ``alpha`` None leaves both sides unweighted (torchvision's default is alpha = 0.25, gamma = 2).
    """
    logits, target = _check_float("logits", logits), _check_float("target", target)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] or be None, got {alpha}")
    ce = binary_cross_entropy_with_logits(logits, target, reduction="none")  # checks the shapes
    one_minus_pt = torch.sigmoid(logits) * (1 - target) + torch.sigmoid(-logits) * target
    loss = _focal_weight(one_minus_pt, gamma) * ce
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return _reduce(loss, reduction)


def l2_penalty(params) -> torch.Tensor:
    """sum_w w^2 over every element of every tensor in ``params`` (a list); 0 for an empty list.

    Added to the loss as lambda * l2_penalty(...), it is the classic coupled L2 penalty: its gradient
    2 lambda w enters the optimizer's moments, unlike AdamW's decoupled weight decay (see optim.py).
    Pick the tensors with ``optim.decayed_params(model)`` (no biases, no LayerNorm, like weight decay).
    """
    return sum((_check_float("parameter", p) ** 2).sum() for p in params) if params else torch.tensor(0.0)


def l1_penalty(params) -> torch.Tensor:
    """sum_w |w| over every element of every tensor in ``params`` (a list); 0 for an empty list.
    Its gradient is sign(w) (0 at w = 0, as torch's abs): it pushes weights to exactly 0 (sparsity)."""
    return sum(_check_float("parameter", p).abs().sum() for p in params) if params else torch.tensor(0.0)
