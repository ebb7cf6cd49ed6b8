"""minift/card.py: the model card says what minift.json says, for every task head, with or without a run record."""
import pytest

from minift import card


@pytest.mark.parametrize("head,auto", [("ForSequenceClassification", "AutoModelForSequenceClassification"),
                                       ("ForTokenClassification", "AutoModelForTokenClassification"),
                                       ("ForQuestionAnswering", "AutoModelForQuestionAnswering"),
                                       ("ForMaskedLM", "AutoModelForMaskedLM")])
def test_every_head_gets_its_auto_class_and_a_bare_meta_renders(head, auto):
    text = card.render({"task": "qa", "max_length": 384}, head)
    assert f"{auto}.from_pretrained" in text and "Base model:** `unknown`" in text
    assert text.count("Not recorded.") == 2 and "Not scored yet" in text and "Labels" not in text


def test_fitted_settings_flags_and_scores_are_listed():
    meta = {"task": "multilabel", "labels": ["joy", "anger"], "thresholds": [0.31, 0.625], "training": {
        "base_model": "m", "data": {"train": "t.csv", "train_rows": 10, "valid": "v.csv", "valid_rows": 4},
        "flags": {"lr": 1e-4, "tune_thresholds": True, "dropout": None, "l2": 0.0, "oversample": False},
        "scores": {"valid": {"f1_micro": 0.5, "f1_macro": 0.25}}}}
    text = card.render(meta, "ForSequenceClassification")
    assert "`joy` 0.310, `anger` 0.625" in text and "- train: `t.csv`, 10 rows" in text
    assert "- `--lr` 0.0001" in text and "- `--tune-thresholds`\n" in text
    assert "--dropout" not in text and "--l2" not in text and "--oversample" not in text  # unset flags left out
    scores = text.split("## Scores")[1].split("## How")[0]
    assert "| f1_micro | 0.5000 |" in scores and "| f1_macro | 0.2500 |" in scores and "test" not in scores
    assert "compare each label's sigmoid with its threshold" in text
