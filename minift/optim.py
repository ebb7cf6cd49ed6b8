"""AdamW, Adam and SGD, parameter groups with layer-wise learning-rate decay, and learning-rate schedules.

References:
- AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (Algorithm 2),
  with the bias correction of Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
  `AdamW` below takes the same steps as `torch.optim.AdamW` (tests/test_optim.py checks it); `Adam` and `SGD`
  those of `torch.optim.Adam` and `torch.optim.SGD` (tests/test_optim_more.py).
- SGD with momentum: Sutskever et al., "On the importance of initialization and momentum in deep learning",
  ICML 2013 (Polyak's heavy ball and Nesterov's accelerated gradient, as torch.optim.SGD writes them).
- No weight decay on biases and LayerNorm weights: Devlin et al., "BERT", 2019 (the original code).
- Layer-wise learning-rate decay: Clark et al., "ELECTRA", ICLR 2020, appendix A;
  Sun et al., "How to Fine-Tune BERT for Text Classification?", 2019, section 5.4.2.
- A separate rate for the new head (`lr_head`): the discriminative fine-tuning of Howard & Ruder, "ULMFiT", ACL
  2018, section 3.2: a freshly initialised layer has further to go than the pretrained ones below it.
- Warmup then linear (or cosine) decay: the schedules of `transformers.optimization`
  (`get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup`); cosine from
  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.

How the pieces fit in a training loop:

    groups = param_groups(model, lr=2e-5, weight_decay=0.01, layer_decay=0.9)
    opt = AdamW(groups)
    for step in range(total_steps):
        set_lr(opt, linear(step, total_steps, warmup_steps))
        loss = ...; loss.backward(); opt.step(); opt.zero_grad()
"""
import math
import re

import torch

# ----------------------------------------------------------------------------------------------
# AdamW
# ----------------------------------------------------------------------------------------------


def _run_closure(closure):
    """closure() with autograd on (it recomputes the loss and calls backward, as torch.optim allows), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay. For each parameter p with gradient g, at step t = 1, 2, ...:

        p   <- p - lr * wd * p                      (decoupled weight decay, before the Adam step)
        m   <- beta1 * m + (1 - beta1) * g          (first moment, state "exp_avg")
        v   <- beta2 * v + (1 - beta2) * g * g      (second moment, state "exp_avg_sq")
        m^  =  m / (1 - beta1^t)                    (bias corrections: m and v start at zero)
        v^  =  v / (1 - beta2^t)
        p   <- p - lr * m^ / (sqrt(v^) + eps)

    The state of each parameter is {"step": t (an int), "exp_avg": m, "exp_avg_sq": v}; it travels
    through `state_dict()` / `load_state_dict()` (inherited from torch.optim.Optimizer) to resume.

    Two paths compute these same lines in the same order. The reference path (`_update`) runs them for one
    parameter at a time, as written above. The fast path (`_update_foreach`) runs each line once for a whole list
    of parameters with torch's `_foreach_*` kernels (what `torch.optim.AdamW(foreach=True)` uses): a GPU then
    launches about 8 kernels per step instead of 8 per parameter (800 for a 6-layer encoder), and each launch
    costs time whatever the tensor's size. `foreach=None` takes the fast path when the parameters are on a GPU,
    like torch; tests/test_optim.py checks that both paths give the same result.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, foreach=None):
        if lr < 0.0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps <= 0.0 or weight_decay < 0.0:
            raise ValueError(f"need eps > 0 and weight_decay >= 0, got eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.foreach = foreach

    @torch.no_grad()
    def step(self, closure=None):
        """One AdamW update of every parameter that has a gradient; returns closure() if given."""
        loss = _run_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:  # first step: moments start at zero
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
            foreach = self.foreach if self.foreach is not None else all(p.is_cuda for p in params)
            if foreach and params:
                self._update_foreach(group, params)
            else:
                for p in params:
                    self._update(group, p)
        return loss

    def _update(self, group, p):
        """The reference path: the update of one parameter, line by line as in the class docstring."""
        lr, wd, eps, (beta1, beta2) = group["lr"], group["weight_decay"], group["eps"], group["betas"]
        g, state = p.grad, self.state[p]
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        p.mul_(1.0 - lr * wd)
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        m_hat = m / (1.0 - beta1**t)
        v_hat = v / (1.0 - beta2**t)
        p.addcdiv_(m_hat, v_hat.sqrt_().add_(eps), value=-lr)

    def _update_foreach(self, group, params):
        """The fast path: the same lines, each one kernel over the list of parameters (t may differ per parameter,
        e.g. after gradual unfreezing, so the bias corrections are a list of numbers)."""
        lr, wd, eps, (beta1, beta2) = group["lr"], group["weight_decay"], group["eps"], group["betas"]
        grads = [p.grad for p in params]
        states = [self.state[p] for p in params]
        m, v = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(params, 1.0 - lr * wd)
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
        m_hat = torch._foreach_div(m, [1.0 - beta1 ** s["step"] for s in states])
        v_hat = torch._foreach_div(v, [1.0 - beta2 ** s["step"] for s in states])
        torch._foreach_sqrt_(v_hat)
        torch._foreach_add_(v_hat, eps)
        torch._foreach_addcdiv_(params, m_hat, v_hat, value=-lr)


# ----------------------------------------------------------------------------------------------
# Adam (coupled L2) and SGD: the textbook optimizers, for comparison with AdamW
# ----------------------------------------------------------------------------------------------


class Adam(AdamW):
    """Adam with the classic, coupled L2 weight decay (torch.optim.Adam's `weight_decay`). At step t:

        g   <- g + wd * p                           (L2: the gradient of (wd / 2) * |p|^2 joins g ...)
        m   <- beta1 * m + (1 - beta1) * g          (... so it enters the moments, and is then divided
        v   <- beta2 * v + (1 - beta2) * g * g       by sqrt(v^) like any gradient: a weight with large
        m^  =  m / (1 - beta1^t)                     gradients is decayed less. AdamW's decoupled decay
        v^  =  v / (1 - beta2^t)                     shrinks every weight by the same lr * wd instead.)
        p   <- p - lr * m^ / (sqrt(v^) + eps)

    A penalty lambda * sum(w^2) in the loss gives exactly `weight_decay = 2 * lambda` here. State, checks and
    `step` are AdamW's; only the update of one parameter differs (one path, no foreach fast path).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)

    def _update(self, group, p):
        lr, wd, eps, (beta1, beta2) = group["lr"], group["weight_decay"], group["eps"], group["betas"]
        state = self.state[p]
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        g = p.grad.add(p, alpha=wd)  # a new tensor: p.grad itself stays the loss's gradient
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        v_hat = v / (1.0 - beta2**t)
        p.addcdiv_(m / (1.0 - beta1**t), v_hat.sqrt_().add_(eps), value=-lr)


class SGD(torch.optim.Optimizer):
    """Stochastic gradient descent with momentum mu, dampening, Nesterov momentum and coupled L2 weight decay,
    step for step torch.optim.SGD (Sutskever et al. 2013's formulation of Polyak and Nesterov momentum):

        g <- g + wd * p                             (L2; under SGD the same as decoupled decay: see tests)
        b <- g                                      (first step with mu > 0; state "momentum_buffer")
        b <- mu * b + (1 - dampening) * g           (later steps)
        d <- g + mu * b  if nesterov, else  b       (d = g when mu = 0)
        p <- p - lr * d
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0.0 or momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(f"need lr, momentum, weight_decay >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One SGD update of every parameter that has a gradient; returns closure() if given."""
        loss = _run_closure(closure)
        for group in self.param_groups:  # the names of the docstring: mu momentum, wd weight decay, d direction
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in (p for p in group["params"] if p.grad is not None):
                d = p.grad.add(p, alpha=wd)
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(d, alpha=1.0 - group["dampening"])
                    b = state["momentum_buffer"]
                    d = d.add(b, alpha=mu) if group["nesterov"] else b
                p.add_(d, alpha=-lr)
        return loss


OPTIMIZERS = {"adamw": AdamW, "adam": Adam, "sgd": SGD}


# ----------------------------------------------------------------------------------------------
# Parameter groups: no decay for biases and norms, layer-wise learning-rate decay
# ----------------------------------------------------------------------------------------------

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")


def num_layers(names):
    """L, the number of encoder layers: 1 + the largest i among names containing `layers.{i}.` (0 if none)."""
    found = [int(m.group(1)) for m in map(_LAYER.search, names) if m]
    return max(found) + 1 if found else 0


def layer_depth(name, num_layers):
    """How deep a parameter sits, counted from the input, for an encoder with `num_layers` layers L:

        0      for `embeddings.*`
        i + 1  for `layers.{i}.*`
        L + 1  for everything else (pooler, task head)

    The pattern may sit anywhere in the name, so `encoder.layers.3.attn.query.weight` has depth 4.
    """
    if _EMBEDDINGS.search(name):
        return 0
    m = _LAYER.search(name)
    return int(m.group(1)) + 1 if m else num_layers + 1


def decays(param):
    """Whether weight decay (and the L1 / L2 penalties) apply to `param`: matrices (linear and embedding
    weights) yes; tensors with fewer than 2 dimensions (biases, LayerNorm weights and biases, scalars) no."""
    return param.ndim >= 2


def decayed_params(model):
    """The trainable parameters of `model` that `decays`: what `losses.l2_penalty` / `l1_penalty` sum over."""
    return [p for p in model.parameters() if p.requires_grad and decays(p)]


HEAD = "head."  # every task model (minift/tasks) keeps its new layers in `model.head`, beside `model.encoder`


def is_head(name):
    """Whether a parameter belongs to the task head, the layers added on top of the pretrained encoder (and so
    newly initialised, unless the checkpoint carried a saved head): its name starts with `head.`. The LM head's
    decoder is the encoder's word embeddings (tied), named `encoder.embeddings.*`, so it is not a head parameter."""
    return name.startswith(HEAD)


def param_groups(model, lr, weight_decay, layer_decay=None, lr_head=None):
    """Split the trainable parameters of `model` into optimizer groups.

    - Weight decay: `weight_decay` for the parameters that `decays`, 0 for the rest.
    - Layer-wise learning-rate decay: with `layer_decay` = d, a parameter at depth k (see
      `layer_depth`) of an L-layer encoder gets lr * d^(L + 1 - k), so the head learns at `lr` and
      each layer below it at d times the rate of the layer above. Without it every group gets `lr`.
    - A head rate: with `lr_head`, the head's parameters (`is_head`) get `lr_head` instead, whatever the layer
      decay; None: the head is treated like the rest.
    - Parameters with requires_grad False (frozen) are left out.

    Each group is a dict {"params", "param_names", "lr", "initial_lr", "weight_decay"}; `initial_lr`
    is the group's base rate that `set_lr` scales (the key torch.optim.lr_scheduler also uses).
    """
    depth_count = num_layers([n for n, _ in model.named_parameters()])  # frozen layers count too
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = {}  # (depth, decay) -> group, in the order the parameters first appear; depth "head": lr_head's
    for name, p in named:
        depth = layer_depth(name, depth_count) if layer_decay is not None else 0
        if lr_head is not None and is_head(name):
            depth = "head"
        decay = decays(p)
        if (depth, decay) not in groups:
            if depth == "head":
                group_lr = lr_head
            else:
                group_lr = lr * layer_decay ** (depth_count + 1 - depth) if layer_decay is not None else lr
            groups[depth, decay] = {
                "params": [], "param_names": [], "lr": group_lr, "initial_lr": group_lr,
                "weight_decay": weight_decay if decay else 0.0,
            }
        groups[depth, decay]["params"].append(p)
        groups[depth, decay]["param_names"].append(name)
    return list(groups.values())


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules: multipliers in [0, 1] as pure functions of the step (0-based)
# ----------------------------------------------------------------------------------------------


def _warmup(step, warmup_steps):
    """step / warmup_steps while step < warmup_steps (the first update has multiplier 0), else 1."""
    return step / max(1, warmup_steps) if step < warmup_steps else 1.0


def constant(step, total_steps=0, warmup_steps=0):
    """1 after a linear warmup: step / W for step < W, then 1."""
    return _warmup(step, warmup_steps)


def linear(step, total_steps, warmup_steps=0):
    """Linear warmup, then linear decay to 0 at total_steps T:  (T - step) / (T - W) for step >= W."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def cosine(step, total_steps, warmup_steps=0):
    """Linear warmup, then half a cosine down to 0 at T:  0.5 * (1 + cos(pi * progress)),
    progress = (step - W) / (T - W), held at 1 after T (so the rate stays 0)."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def exponential(step, total_steps=0, warmup_steps=0, gamma=0.999):
    """Linear warmup, then exponential decay:  gamma^(step - W) for step >= W."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps)
    return gamma ** (step - warmup_steps)


SCHEDULES = {"constant": constant, "linear": linear, "cosine": cosine, "exponential": exponential}


def set_lr(optimizer, multiplier):
    """Set every group's lr to its base rate `initial_lr` times `multiplier` (a schedule's value).

    A group without `initial_lr` takes its current lr as the base the first time.
    """
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * multiplier
