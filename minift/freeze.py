"""Freezing: which parameters of a task model train, and gradual unfreezing.

A task model has an `encoder` (minift.encoder.Encoder) and a `head`; everything outside the encoder is "the
head" here and always trains. A parameter is frozen by setting `requires_grad = False`: backward then gives it
no gradient (`p.grad` stays None), `optim.param_groups` leaves it out, and `optim.AdamW` skips a parameter
without a gradient, weight decay included, so a frozen parameter does not change by a single bit.

Freeze specs (`apply_freeze`), for an encoder of L layers numbered 0..L-1 from the input up:

    none          everything trains (full fine-tuning)
    embeddings    embeddings.* frozen (word, position, token-type tables and their LayerNorm)
    encoder       the whole encoder frozen, pooler included: a linear probe (Alain & Bengio 2017) of the
                  pretrained features; only the head trains
    layers:0-3    layers 0, 1, 2, 3 frozen (ranges are inclusive); also `layers:2`, `layers:0-1,4`.
                  The embeddings and the pooler still train
    bias-only     BitFit (Ben Zaken et al., "BitFit: Simple Parameter-efficient Fine-tuning for
                  Transformer-based Masked Language-models", ACL 2022): of the encoder only the bias terms
                  (`*.bias`: linear layers, pooler and the LayerNorms' beta) train; the head trains fully

Gradual unfreezing (Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification", ACL 2018,
section 3.3): start with the top of the network and unfreeze one more layer, going down, each epoch. With
depth as in `optim.layer_depth` (0 embeddings, i + 1 for layer i, L + 1 pooler), at epoch e (0-based)

    an encoder parameter trains  <=>  depth >= L + 1 - e

    epoch 0        head and pooler
    epoch k        head, pooler and the top k layers L-k..L-1          (1 <= k <= L)
    epoch L + 1    everything, embeddings included (and every later epoch)

The optimizer must hold the parameters before they are unfrozen: build it from `param_groups(model, ...)`
while everything still trains, then freeze; AdamW skips the frozen ones until they get gradients. Change
what is frozen only between steps, after `optimizer.zero_grad()` (which sets gradients to None).
"""
import re

from torch import nn

from minift.optim import layer_depth

SPECS = ("none", "embeddings", "encoder", "bias-only")
VALID = "none, embeddings, encoder, bias-only, or layers:I, layers:I-J, layers:I-J,K (0-based, ranges inclusive)"
_LAYERS = re.compile(r"layers:(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)")


def parse_spec(spec, num_layers=None):
    """A freeze spec -> (kind, frozen layer indices): ("layers", {0, 1, 4}) for "layers:0-1,4", ("none",
    frozenset()) for "none" or None. Spaces and case do not matter. With `num_layers` known, a layer index
    >= num_layers is an error; every error is a ValueError whose message lists the valid forms."""
    text = "none" if spec is None else re.sub(r"\s+", "", str(spec)).lower()
    if text in SPECS:
        return text, frozenset()
    match = _LAYERS.fullmatch(text)
    if not match:
        raise ValueError(f"freeze spec {spec!r} not understood; valid forms: {VALID}")
    layers = set()
    for item in match.group(1).split(","):
        first, _, last = item.partition("-")
        first, last = int(first), int(last or first)
        if last < first:
            raise ValueError(f"freeze spec {spec!r}: the range {item} runs backwards; write {last}-{first}")
        layers.update(range(first, last + 1))
    if num_layers is not None and max(layers) >= num_layers:
        raise ValueError(f"freeze spec {spec!r}: there is no layer {max(layers)}; the encoder has {num_layers} "
                         f"layers, numbered 0-{num_layers - 1}")
    return "layers", frozenset(layers)


def _frozen(name, kind, layers, num_layers):
    """Whether the spec (kind, layers) freezes the encoder parameter `name`, e.g. `layers.3.attn.query.weight`."""
    depth = layer_depth(name, num_layers)  # 0 embeddings, i + 1 layer i, L + 1 pooler
    if kind == "embeddings":
        return depth == 0
    if kind == "encoder":
        return True
    if kind == "layers":
        return depth - 1 in layers
    if kind == "bias-only":
        return not name.endswith(".bias")
    return False  # "none"


def apply_freeze(model: nn.Module, spec) -> nn.Module:
    """Set `requires_grad` on every parameter of `model` as `spec` says (see the module docstring): the
    encoder's parameters by the spec, everything else trainable. Not cumulative: each call starts from
    "everything trains", so apply_freeze(model, "none") unfreezes all. Returns the model."""
    num_layers = len(model.encoder.layers)
    kind, layers = parse_spec(spec, num_layers)  # check the spec before touching the model
    for p in model.parameters():
        p.requires_grad_(True)
    for name, p in model.encoder.named_parameters():
        p.requires_grad_(not _frozen(name, kind, layers, num_layers))
    return model


def gradual_unfreeze(model: nn.Module, epoch: int, spec="none") -> nn.Module:
    """Freeze `model` for `epoch` (0-based) of gradual unfreezing: encoder parameters of depth
    >= L + 1 - epoch train, so epoch 0 trains the head and pooler, epoch k also the top k layers, epoch L + 1
    also the embeddings. A parameter that `spec` freezes stays frozen at every epoch (e.g. "embeddings" keeps
    the embeddings frozen for good). Call it at the start of each epoch; returns the model."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    apply_freeze(model, spec)
    num_layers = len(model.encoder.layers)
    for name, p in model.encoder.named_parameters():
        if layer_depth(name, num_layers) < num_layers + 1 - epoch:
            p.requires_grad_(False)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of scalars; a parameter shared by two modules (tied weights) counts once."""
    params = list(model.parameters())  # parameters() yields each shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def describe(model: nn.Module) -> str:
    """One line for the log: "trainable parameters: 1,234 of 22,713,216 (0.01%)"."""
    trainable, total = count_parameters(model)
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)"
