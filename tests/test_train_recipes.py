"""The recipe flags of `minift.train` end to end on the tiny model (issue 15): what each changes, that it is
recorded in minift.json and the model card, and that evaluate / predict reproduce it."""
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from minift import evaluate, optim, predict, recipes, train
from minift.cli import load_trained
from minift.encoder import Encoder
from minift.tokenizer import Tokenizer
from tests.test_train_cli import WORDS, files, write_csv  # noqa: F401  (files: the module's fixture)
from tests.tiny import make_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def run(files, out, *extra, data="sentiment", model=None):
    args = ["--train", files[data], "--model", model or files["model"], "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--lr", "1e-3", "--seed", "7", "--quiet", *extra]
    return train.train(train.parser().parse_args(args))


def log(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def exits_2(files, tmp_path, *extra, message):
    proc = subprocess.run([sys.executable, "-m", "minift.train", "--train", files["sentiment"], "--model",
                           files["model"], "--out", str(tmp_path / "bad"), "--quiet", "--max-steps", "1", *extra],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "bad" / "model.safetensors").exists()


# ---- 1. regularisation ---------------------------------------------------------------------------------------
def test_set_dropout_reaches_every_dropout_and_the_saved_config(files):
    enc = Encoder.from_pretrained(files["model"]).set_dropout(0.3, 0.2)
    rates = {m.p for m in enc.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.3} and {layer.attn.dropout_p for layer in enc.layers} == {0.2}
    assert enc.cfg.to_dict()["hidden_dropout_prob"] == 0.3 and enc.cfg.to_dict()["attention_probs_dropout_prob"] == 0.2
    assert Encoder.from_pretrained(files["model"]).set_dropout(None, 0.0).cfg.hidden_dropout == 0.1  # None keeps
    with pytest.raises(ValueError, match="1.0"):
        enc.set_dropout(1.0)


def test_dropout_flags_are_saved_and_the_head_follows(files, tmp_path):
    out = tmp_path / "run"
    run(files, out, "--max-steps", "1", "--dropout", "0.3", "--attention-dropout", "0.0")
    config = json.loads((out / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0.3 and config["attention_probs_dropout_prob"] == 0.0
    _, model = load_trained(out, torch.device("cpu"))
    assert model.head.dropout.p == 0.3
    flags = json.loads((out / "minift.json").read_text())["training"]["flags"]
    assert flags["dropout"] == 0.3 and flags["attention_dropout"] == 0.0


def test_l2_and_l1_are_logged_and_accumulation_still_equals_one_batch(files, tmp_path):
    """With the penalties on, 2 micro-batches of 4 give the weights of batches of 8 (dropout off), and each
    metrics.jsonl row carries the two terms beside the data loss."""
    model = str(make_tiny_model(tmp_path / "nodrop", WORDS, dropout=0.0))
    reg = ["--l2", "0.01", "--l1", "0.001", "--eval-every", "2"]
    run(files, tmp_path / "big", *reg, model=model)
    run(files, tmp_path / "acc", *reg, "--batch-size", "4", "--accumulate", "2", model=model)
    big, acc = load_file(tmp_path / "big" / "model.safetensors"), load_file(tmp_path / "acc" / "model.safetensors")
    for name in big:
        torch.testing.assert_close(acc[name], big[name], rtol=1e-4, atol=1e-5, msg=name)
    rows = log(tmp_path / "big")
    assert all(row["l2_penalty"] > 0 and row["l1_penalty"] > 0 for row in rows)
    run(files, tmp_path / "plain", model=model)
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    assert any(not torch.allclose(plain[k], big[k]) for k in big)  # the penalties did move the weights
    assert "l2_penalty" not in log(tmp_path / "plain")[0]


# ---- 2. augmentation -------------------------------------------------------------------------------------------
def prepared(files, *extra):
    args = train.parser().parse_args(["--train", files["sentiment"], "--model", files["model"], "--seed", "3",
                                      *extra])
    train.check_args(args)
    args.max_length = 64
    return train.prepare(args, Tokenizer.from_pretrained(files["model"]))


def test_augmented_copies_stay_in_training_with_their_labels(files):
    _, plain_train, plain_valid, plain_test = prepared(files, "--test-fraction", "0.25")
    _, train_f, valid_f, test_f = prepared(files, "--test-fraction", "0.25", "--augment", "--augment-n", "2",
                                           "--augment-p", "0.3")
    same = lambda a, b: [(f["input_ids"], int(f["labels"])) for f in a] == \
        [(f["input_ids"], int(f["labels"])) for f in b]  # noqa: E731
    assert same(valid_f, plain_valid) and same(test_f, plain_test)  # validation and test untouched
    n = len(plain_train)
    assert len(train_f) == 3 * n and same(train_f[:n], plain_train)
    copies = train_f[n:]
    assert [int(f["labels"]) for f in copies] == [int(f["labels"]) for f in plain_train for _ in range(2)]
    assert sum(c["input_ids"] != plain_train[i // 2]["input_ids"] for i, c in enumerate(copies)) > n // 2
    held_out = {tuple(f["input_ids"]) for f in valid_f + test_f}
    originals = {tuple(f["input_ids"]) for f in plain_train}
    assert not {tuple(c["input_ids"]) for c in copies} & held_out - originals  # no copy is a held-out row


def test_mask_tokens_masks_word_pieces_only_reproducibly(files):
    task, train_f, _, _ = prepared(files)
    tok = task.tokenizer
    args = SimpleNamespace(mask_tokens=0.5, seed=1)
    batches = lambda: list(task.batches(train_f, 8, 1, 0, shuffle=True))  # noqa: E731
    masked = recipes.mask_batches(args, tok, batches(), epoch=0)
    for before, after in zip(batches(), masked):
        ids, new = before["input_ids"], after["input_ids"]
        changed = new != ids
        assert (new[changed] == tok.mask_id).all() and torch.equal(after["labels"], before["labels"])
        special = (ids == tok.cls_id) | (ids == tok.sep_id) | (before["attention_mask"] == 0)
        assert not changed[special].any()
    share = sum(int((a["input_ids"] == tok.mask_id).sum()) for a in masked) / \
        sum(int(((b["attention_mask"] == 1) & (b["input_ids"] != tok.cls_id) & (b["input_ids"] != tok.sep_id)).sum())
            for b in batches())
    assert 0.35 < share < 0.65
    again = recipes.mask_batches(args, tok, batches(), epoch=0)
    other = recipes.mask_batches(args, tok, batches(), epoch=1)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(masked, again))
    assert any(not torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(masked, other))


def test_mask_tokens_resumes_exactly(files, tmp_path):
    """Resumed from step 3 (mid-epoch 1), a --mask-tokens run reaches step 9 (in epoch 2) with the weights of the
    run that was not stopped: the masks are a function of seed and epoch, not of the run's history."""
    common = ["--epochs", "2", "--mask-tokens", "0.2", "--save-every", "3", "--keep-checkpoints", "5"]
    run(files, tmp_path / "whole", *common)
    run(files, tmp_path / "part", *common, "--resume", str(tmp_path / "whole" / "checkpoints" / "step-3"))
    whole, part = (load_file(tmp_path / d / "checkpoints" / "step-9" / "model.safetensors") for d in ("whole", "part"))
    assert all(torch.equal(whole[k], part[k]) for k in whole)
    unmasked = tmp_path / "plain"
    run(files, unmasked, *common[:2], *common[4:])
    plain = load_file(unmasked / "checkpoints" / "step-9" / "model.safetensors")
    assert any(not torch.equal(whole[k], plain[k]) for k in whole)  # the masking did change training


def test_augment_is_for_sentence_tasks(files, tmp_path):
    exits_2(files, tmp_path, "--task", "ner", "--augment", message="--augment rewrites sentences")


# ---- 3. imbalance and loss --------------------------------------------------------------------------------------
def test_undersample_balances_each_epoch_and_excludes_oversample(files, tmp_path):
    rows = [(f"the film was {w}", "pos") for w in ["good", "great", "fine"] * 8] + \
           [(f"the plot was {w}", "neg") for w in ["bad", "dull"] * 3]
    data = write_csv(tmp_path / "skewed.csv", ["text", "label"], rows)
    out = tmp_path / "run"
    train.main(["--train", data, "--valid", data, "--model", files["model"], "--out", str(out), "--undersample",
                "--epochs", "1", "--batch-size", "4", "--quiet"])
    task, _ = load_trained(out, torch.device("cpu"))
    task.undersample = True
    features = task.featurize(task.read(data))
    labels = [int(y) for b in task.batches(features, 4, 0, 0, shuffle=True) for y in b["labels"]]
    assert sorted(np.bincount(labels).tolist()) == [6, 6]
    assert json.loads((out / "minift.json").read_text())["training"]["flags"]["undersample"] is True
    exits_2(files, tmp_path, "--undersample", "--oversample", message="--undersample")


@pytest.mark.parametrize("kind", ["classification", "multilabel"])
def test_focal_loss_and_label_smoothing_are_the_task_loss(files, kind):
    extra = ["--loss", "focal", "--focal-gamma", "1.5"] if kind == "multilabel" else \
        ["--loss", "focal", "--focal-gamma", "1.5", "--class-weights", "balanced"]
    task, train_f, _, _ = prepared(files, "--task", kind, *extra, *(["--train", files["multi"]]
                                                                     if kind == "multilabel" else []))
    model = task.build_model(Encoder.from_pretrained(files["model"])).eval()
    batch = next(task.batches(train_f, 8))
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    total, count = task.loss(model, batch)
    y = batch["labels"]
    if kind == "classification":
        w = task.class_weights
        p_t = logits.softmax(-1).gather(1, y[:, None]).squeeze(1)
        expected = (-w[y] * (1 - p_t) ** 1.5 * p_t.log()).sum()
        assert count == pytest.approx(float(w[y].sum()))
    else:
        p = logits.sigmoid()
        p_t = p * y + (1 - p) * (1 - y)
        expected = (-(1 - p_t) ** 1.5 * p_t.log()).sum()
        assert count == y.numel()
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)
    task.loss_name, task.label_smoothing, task.class_weights = "ce", 0.1, None
    if kind == "classification":
        torch.testing.assert_close(task.loss(model, batch)[0],
                                   F.cross_entropy(logits, y, label_smoothing=0.1, reduction="sum"))


def test_loss_flags_run_and_are_checked(files, tmp_path):
    run(files, tmp_path / "focal", "--loss", "focal", "--max-steps", "2")
    flags = json.loads((tmp_path / "focal" / "minift.json").read_text())["training"]["flags"]
    assert flags["loss"] == "focal" and flags["focal_gamma"] == 2.0
    run(files, tmp_path / "smooth", "--label-smoothing", "0.1", "--max-steps", "2")
    flags = json.loads((tmp_path / "smooth" / "minift.json").read_text())["training"]["flags"]
    assert flags["label_smoothing"] == 0.1 and "focal_gamma" not in flags
    exits_2(files, tmp_path, "--loss", "focal", "--label-smoothing", "0.1", message="nor with --loss focal")
    exits_2(files, tmp_path, "--task", "regression", "--loss", "focal", message="--loss focal")
    exits_2(files, tmp_path, "--tune-thresholds", message="--tune-thresholds")


def test_tuned_thresholds_are_saved_and_used_by_evaluate_and_predict(files, tmp_path, capsys):
    out = tmp_path / "multi"
    run(files, out, "--task", "multilabel", "--tune-thresholds", "--epochs", "2", "--lr", "5e-3", data="multi")
    meta = json.loads((out / "minift.json").read_text())
    thresholds = np.array(meta["thresholds"])
    assert thresholds.shape == (3,) and not np.allclose(thresholds, 0.5)
    task, model = load_trained(out, torch.device("cpu"))
    features = task.featurize(task.read(files["multi"]))
    probs = task.logits(model, features).sigmoid().double().numpy()
    y = np.stack([f["labels"].numpy() for f in features]).astype(int)
    chosen = (probs > thresholds).astype(int)
    from sklearn.metrics import f1_score
    capsys.readouterr()
    evaluate.main(["--model", str(out), "--data", files["multi"]])
    scores = json.loads(capsys.readouterr().out)
    assert scores["f1_micro"] == pytest.approx(f1_score(y, chosen, average="micro", zero_division=0))
    predict.main(["--model", str(out), "--data", files["multi"]])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [sorted(r["labels"]) for r in rows] == [sorted(task.labels.names[j] for j in np.nonzero(c)[0])
                                                   for c in chosen]


# ---- 4. optimizers ---------------------------------------------------------------------------------------------
def test_optimizer_flag_builds_each_optimizer_with_its_settings(files, tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    base = dict(lr=0.1, weight_decay=0.01, layer_decay=None, lr_head=None, momentum=0.9, nesterov=True)
    sgd = recipes.make_optimizer(SimpleNamespace(optimizer="sgd", **base), model)
    assert isinstance(sgd, optim.SGD) and sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.9
    assert {g["weight_decay"] for g in sgd.param_groups} == {0.01, 0.0}  # bias undecayed
    assert isinstance(recipes.make_optimizer(SimpleNamespace(optimizer="adam", **base), model), optim.Adam)
    assert type(recipes.make_optimizer(SimpleNamespace(optimizer="adamw", **base), model)) is optim.AdamW
    for name, extra in (("adam", []), ("sgd", ["--momentum", "0.9", "--nesterov"])):
        run(files, tmp_path / name, "--optimizer", name, *extra, "--max-steps", "2")
        assert json.loads((tmp_path / name / "minift.json").read_text())["training"]["flags"]["optimizer"] == name
    exits_2(files, tmp_path, "--optimizer", "sgd", "--nesterov", message="--nesterov needs --momentum")
    exits_2(files, tmp_path, "--momentum", "0.9", message="--optimizer sgd")
    assert "coupled L2" in train.parser().format_help()


# ---- 5. splits ---------------------------------------------------------------------------------------------------
def test_test_fraction_holds_out_a_disjoint_stratified_test_split(files, tmp_path, capsys):
    results = run(files, tmp_path / "run", "--test-fraction", "0.25", "--valid-fraction", "0.25", "--max-steps", "1")
    err = capsys.readouterr().err
    assert "24 training, 12 validation, 12 test rows" in err
    assert "test" in results and set(results["test"]) == {"accuracy", "f1", "auc"}
    data = json.loads((tmp_path / "run" / "minift.json").read_text())["training"]["data"]
    assert (data["train_rows"], data["valid_rows"], data["test_rows"]) == (24, 12, 12)
    split = lambda seed=5: recipes.split_rows(  # noqa: E731
        SimpleNamespace(task="classification", test=None, valid=None, test_fraction=0.25, valid_fraction=0.25,
                        seed=seed, train="x"), None, rows)
    from minift.data import Example
    rows = [Example(f"row {i}", label="ab"[i % 2]) for i in range(40)]
    tr, va, te = split()
    assert sorted(e.text for e in tr + va + te) == sorted(e.text for e in rows)  # disjoint and complete
    assert [sum(e.label == "a" for e in part) for part in (tr, va, te)] == [10, 5, 5]  # stratified
    assert (tr, va, te) == split() and te != split(seed=6)[2]  # seeded
    exits_2(files, tmp_path, "--test-fraction", "0.5", "--valid-fraction", "0.5", message="leave no rows")


def test_folds_train_each_fold_and_report_mean_and_standard_error(files, tmp_path):
    out = tmp_path / "cv"
    summary = run(files, out, "--folds", "3", "--max-steps", "2")
    saved = json.loads((out / "results.json").read_text())
    assert saved == summary and saved["metric"] == "accuracy" and len(saved["folds"]) == 3
    per_fold = [json.loads((out / f"fold-{k}" / "results.json").read_text())["valid"]["accuracy"] for k in range(3)]
    assert [f["accuracy"] for f in saved["folds"]] == per_fold
    assert saved["mean"] == pytest.approx(np.mean(per_fold))
    assert saved["stderr"] == pytest.approx(np.std(per_fold, ddof=1) / np.sqrt(3))
    sizes = [json.loads((out / f"fold-{k}" / "minift.json").read_text())["training"]["data"]["valid_rows"]
             for k in range(3)]
    assert sizes == [16, 16, 16]  # the 48 rows, each validated once
    exits_2(files, tmp_path, "--folds", "1", message="--folds K needs K >= 2")


# ---- 6. calibration and the model card ----------------------------------------------------------------------------
def test_calibrate_saves_a_temperature_that_predict_applies(files, tmp_path, capsys):
    out = tmp_path / "run"
    results = run(files, out, "--calibrate", "--epochs", "2")
    t = json.loads((out / "minift.json").read_text())["temperature"]
    assert t == results["calibration"]["temperature"] and t > 0 and t != 1.0
    assert results["calibration"]["nll_after"] <= results["calibration"]["nll_before"] + 1e-12
    task, model = load_trained(out, torch.device("cpu"))
    z = task.logits(model, task.featurize([task.example("the film was good")], with_labels=False))
    capsys.readouterr()
    predict.main(["--model", str(out), "--text", "the film was good"])
    row = json.loads(capsys.readouterr().out)
    expected = (z / t).softmax(-1)[0]
    assert [row["probabilities"][n] for n in task.labels.names] == pytest.approx(expected.tolist(), abs=1e-6)
    exits_2(files, tmp_path, "--task", "regression", "--calibrate", message="--calibrate")


def test_model_card_names_model_data_flags_and_scores(files, tmp_path):
    out = tmp_path / "run"
    results = run(files, out, "--max-steps", "2", "--l2", "0.01", "--test-fraction", "0.25")
    card = (out / "README.md").read_text()
    assert files["model"] in card and "classification" in card and "`negative`, `positive`" in card
    assert files["sentiment"] in card and "26 rows" in card and "`--l2` 0.01" in card
    assert f"| accuracy | {results['valid']['accuracy']:.4f} | {results['test']['accuracy']:.4f} |" in card
    assert "AutoModelForSequenceClassification.from_pretrained" in card and "load_trained" in card
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
