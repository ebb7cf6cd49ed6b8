"""minift.adapter: LoRA adapters in PEFT's folder layout, against PEFT itself (a test-only oracle).

minift's save_adapter folder loads in peft.PeftModel.from_pretrained to the same outputs (and back in minift's
load_adapter, bit for bit); an adapter PEFT trained and saved loads in minift to PEFT's outputs; the word
embeddings' adapter travels with its own rank and α (rank_pattern, alpha_pattern); a folder minift cannot compute
is refused with a message. Tiny random BERT (with a classification head), RoBERTa and DistilBERT models, as in
tests/test_lora.py, whose helpers these are."""
import copy
import json

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")

from minift import adapter, checkpoint, lora  # noqa: E402
from minift.encoder import Encoder  # noqa: E402
from tests.test_lora import (FAMILIES, base, batch, head_names, hf_names, load_hf, load_ours,  # noqa: E402,F401
                             out_hf, out_ours, peft_lora_layers, randomise)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_distilbert_targets_are_its_own_names(tmp_path):
    """PEFT must be told DistilBERT's names (q_lin, v_lin), not BERT's."""
    torch.manual_seed(0)
    FAMILIES["distilbert"]().save_pretrained(tmp_path)
    encoder = lora.apply_lora(Encoder.from_pretrained(tmp_path))
    assert adapter.peft_target_modules(encoder) == ["q_lin", "v_lin"]


@pytest.mark.parametrize("targets", ["query,value", "output,embeddings", "embeddings"])
def test_saved_adapter_loads_in_peft(base, targets, tmp_path):  # noqa: F811
    """save_adapter's folder, through peft.PeftModel.from_pretrained on the base transformers model: the same
    outputs as minift's, the same layers adapted; minift's load_adapter reads it back to the same outputs."""
    family, folder = base
    ours = randomise(lora.apply_lora(load_ours(family, folder), r=4, alpha=8, dropout=0.1, targets=targets,
                                     embedding_r=2, embedding_alpha=5))
    if family == "bert":
        nn.init.normal_(ours.head.out.weight)  # a trained head differs from the checkpoint's
    adapter.save_adapter(ours, tmp_path, str(folder), "SEQ_CLS" if family == "bert" else "FEATURE_EXTRACTION",
                      head_names(family))
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    linear = targets != "embeddings"  # without linear adapters, r and α are the embeddings' (and no dropout)
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == ((4, 8, 0.1) if linear else (2, 5, 0.0))
    assert config["modules_to_save"] == (["classifier"] if family == "bert" else None)
    words = "embeddings" in targets
    assert config["rank_pattern"] == ({"word_embeddings": 2} if words else {})
    assert config["alpha_pattern"] == ({"word_embeddings": 5} if words else {})
    theirs = peft.PeftModel.from_pretrained(load_hf(family, folder), tmp_path).eval()
    assert peft_lora_layers(theirs) == set(hf_names(family, ours).values())
    ids, mask = batch(family, seed=5)
    with torch.no_grad():
        got = out_ours(family, ours, ids, mask)
        assert (got - out_hf(family, theirs, ids, mask)).abs().max() <= 1e-5
        again = adapter.load_adapter(load_ours(family, folder), tmp_path, head_names(family)).eval()
        assert torch.equal(out_ours(family, again, ids, mask), got)


def test_load_adapter_reads_peft_files(base, tmp_path):  # noqa: F811
    """An adapter PEFT trained and saved (save_pretrained) gives in minift the outputs it gives in PEFT."""
    family, folder = base
    torch.manual_seed(7)
    # "output.dense" also ends attention.output.dense: PEFT adapts both (not BERT's pooler.dense)
    targets = ["query", "value", "output.dense"] if family != "distilbert" else ["q_lin", "v_lin", "out_lin", "lin2"]
    config = peft.LoraConfig(r=3, lora_alpha=6, target_modules=[*targets, "word_embeddings"],
                             rank_pattern={"word_embeddings": 2}, alpha_pattern={"word_embeddings": 5},
                             task_type="SEQ_CLS" if family == "bert" else None)
    theirs = peft.get_peft_model(load_hf(family, folder), config).eval()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if p.requires_grad:  # lora_A, lora_B, and the classifier PEFT trains
                p.add_(torch.randn_like(p) * 0.3)
    theirs.save_pretrained(tmp_path)
    ours = adapter.load_adapter(load_ours(family, folder), tmp_path, head_names(family)).eval()
    assert set(hf_names(family, ours).values()) == peft_lora_layers(theirs)
    ids, mask = batch(family, seed=6)
    with torch.no_grad():
        assert (out_ours(family, ours, ids, mask) - out_hf(family, theirs, ids, mask)).abs().max() <= 1e-5


def test_load_adapter_errors(tmp_path):
    torch.manual_seed(0)
    FAMILIES["bert"]().save_pretrained(tmp_path / "base")
    model = lambda: load_ours("bert", tmp_path / "base")  # noqa: E731
    with pytest.raises(checkpoint.CheckpointError, match="no adapter_config.json"):
        adapter.load_adapter(model(), tmp_path / "base")
    adapter.save_adapter(lora.apply_lora(model()), tmp_path / "ad", head_names={})  # no head saved
    with pytest.raises(checkpoint.CheckpointError, match="no tensors for the task head classifier"):
        adapter.load_adapter(model(), tmp_path / "ad")
    config = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())
    (tmp_path / "ad" / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(checkpoint.CheckpointError, match=r"plain LoRA adapters only \(.*this one has use_dora=True"):
        adapter.load_adapter(model(), tmp_path / "ad", head_names={})
    (tmp_path / "ad" / "adapter_config.json").write_text(json.dumps({**config, "rank_pattern": {"query": 2}}))
    with pytest.raises(checkpoint.CheckpointError, match=r"another for the word embeddings\); this one has "
                                                         r"rank_pattern \{'query': ...\}"):
        adapter.load_adapter(model(), tmp_path / "ad", head_names={})
    other = copy.deepcopy(load_ours("bert", tmp_path / "base"))
    other.encoder.layers = other.encoder.layers[:1]  # a one-layer model: layer 1's tensors fit nowhere
    adapter.save_adapter(lora.apply_lora(model()), tmp_path / "ad2")
    with pytest.raises(checkpoint.CheckpointError, match=r"unexpected in the checkpoint: layers\.1\."):
        adapter.load_adapter(other, tmp_path / "ad2")
    pooled = peft.get_peft_model(load_hf("bert", tmp_path / "base"), peft.LoraConfig(target_modules=["dense"]))
    pooled.save_pretrained(tmp_path / "ad3")  # PEFT adapts the pooler too, which apply_lora never does
    with pytest.raises(checkpoint.CheckpointError, match="unexpected in the checkpoint: pooler.lora_A"):
        adapter.load_adapter(model(), tmp_path / "ad3", head_names={})
