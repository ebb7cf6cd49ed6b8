"""`Encoder.gradient_checkpointing` (`--gradient-checkpointing`): each block is recomputed in the backward pass,
and the gradients are exactly the plain path's, dropout included (torch's checkpoint replays the random state).

Each test would catch: a checkpoint that does not replay the dropout masks (train-mode gradients differ), one that
is never taken (the blocks run once), one that loses a path (padded, packed, LoRA), and a flag not wired through."""
import json

import pytest
import torch

from minift import lora, train
from minift.config import EncoderConfig
from minift.encoder import Encoder
from tests.test_train_cli import files, run_train  # noqa: F401 (files is a fixture)


def tiny_encoder(dropout: float = 0.1) -> Encoder:
    torch.manual_seed(0)
    cfg = EncoderConfig(vocab_size=60, hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64,
                        max_positions=32, type_vocab_size=2, hidden_dropout=dropout, attention_dropout=dropout,
                        raw={"model_type": "bert"})
    return Encoder(cfg)


def batch():
    g = torch.Generator().manual_seed(3)
    lengths = torch.tensor([9, 4, 7])
    mask = (torch.arange(9)[None, :] < lengths[:, None]).long()  # (3, 9), two rows padded
    return torch.randint(5, 60, (3, 9), generator=g).masked_fill(mask == 0, 0), mask


def forward_backward(model, ids, mask, checkpointing: bool, seed: int = 11):
    """(output, {name: grad}, how many times the feed-forward networks ran) for one seeded step."""
    calls = []
    hooks = [layer.ffn.register_forward_hook(lambda *_: calls.append(1)) for layer in model.layers]
    model.gradient_checkpointing = checkpointing
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(ids, mask)
    probe = torch.linspace(-1, 1, out.size(-1))  # a read-out that LayerNorm does not cancel
    (out * probe).sum().backward()
    for h in hooks:
        h.remove()
    model.gradient_checkpointing = False
    return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}, len(calls)


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "padded"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_checkpointed_gradients_equal_the_plain_path_exactly(pack, mode):
    model = tiny_encoder().train(mode == "train")
    model.pack = pack
    ids, mask = batch()
    out, grads, runs = forward_backward(model, ids, mask, checkpointing=False)
    out_c, grads_c, runs_c = forward_backward(model, ids, mask, checkpointing=True)
    assert runs == 3 and runs_c == 6  # checkpointed: every block ran again in the backward pass
    assert torch.equal(out, out_c)
    assert grads.keys() == grads_c.keys() and len(grads) > 30
    for name in grads:
        assert torch.equal(grads[name], grads_c[name]), name
    if mode == "train":  # dropout was on: another seed gives other gradients, so the equality above is not vacuous
        _, other, _ = forward_backward(model, ids, mask, checkpointing=False, seed=12)
        assert not torch.equal(other["layers.0.attn.query.weight"], grads["layers.0.attn.query.weight"])


def test_checkpointing_is_skipped_without_gradients():
    model = tiny_encoder().eval()
    ids, mask = batch()
    with torch.inference_mode():
        plain = model(ids, mask)
        model.gradient_checkpointing = True
        assert not model.recomputes()  # nothing to recompute for: no backward pass can follow
        assert torch.equal(model(ids, mask), plain)


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "padded"])
def test_checkpointing_with_lora_adapters(pack):
    """LoRA's adapters hook into project_qkv; with their own dropout and a frozen base the gradients still agree."""
    model = lora.apply_lora(tiny_encoder(), r=4, alpha=8, dropout=0.1, targets="all").train()
    with torch.no_grad():
        for m in lora.lora_modules(model).values():
            m.lora_B.normal_()  # B = 0 would give A no gradient
    model.pack = pack
    ids, mask = batch()
    _, grads, _ = forward_backward(model, ids, mask, checkpointing=False)
    _, grads_c, runs_c = forward_backward(model, ids, mask, checkpointing=True)
    assert runs_c == 6 and grads.keys() == grads_c.keys()
    assert all("lora_" in name for name in grads) and len(grads) == 3 * 6 * 2
    for name in grads:
        assert torch.equal(grads[name], grads_c[name]), name


def test_the_flag_trains_the_same_model_and_is_recorded(files, tmp_path):  # noqa: F811
    """Three updates with and without --gradient-checkpointing (dropout 0.1 on) end in the same weights."""
    plain, ckpt = tmp_path / "plain", tmp_path / "ckpt"
    run_train(files, plain, "--max-steps", "3", "--eval-every", "3")
    run_train(files, ckpt, "--max-steps", "3", "--eval-every", "3", "--gradient-checkpointing")
    assert (plain / "model.safetensors").read_bytes() == (ckpt / "model.safetensors").read_bytes()
    flags = lambda out: json.loads((out / "minift.json").read_text())["training"]["flags"]  # noqa: E731
    assert flags(ckpt)["gradient_checkpointing"] is True and flags(plain)["gradient_checkpointing"] is False
    assert train.parser().parse_args([]).gradient_checkpointing is False
