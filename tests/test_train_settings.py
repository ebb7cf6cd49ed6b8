"""The task recipes (issue 19): each flag a recipe fills in, the one place the loop resolves them, the settings line
and minift.json's "train_settings", and --lr-head reaching the optimizer."""
import json
from dataclasses import asdict, fields

import pytest

from minift import lora, optim, train, train_checks, train_flags
from minift.encoder import Encoder
from minift.tasks import TASKS, Recipe
from minift.tasks.qa import QAModel
from minift.tasks.sentence import SentenceModel
from minift.tasks.tagging import TaggerModel
from minift.unilm import Seq2SeqLM
from tests.test_train_cli import files  # noqa: F401  (its tiny model and datasets)

RECIPE_FIELDS = [f.name for f in fields(Recipe)]


def parse(*argv):
    return train.parser().parse_args(list(argv))


def test_every_recipe_flag_is_unset_in_argparse_and_says_so_in_help():
    p = train.parser()
    actions = {a.dest: a for a in p._actions}
    for name in RECIPE_FIELDS:
        assert actions[name].default is None, name  # so that a flag the user gave is detectable
        assert train_flags.RECIPE in actions[name].help, name
    text = p.format_help()
    assert "(default: None)" not in text
    table = text[text.index("the task's recipe ("):].splitlines()
    for kind in TASKS:  # the epilog's table: one row per task, with its learning rate
        row = next(line for line in table if line.strip().startswith(kind + " "))
        assert str(TASKS[kind].recipe_of(kind).lr) in row


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_resolve_defaults_takes_the_recipe_for_what_the_user_left_out(kind):
    args = parse("--task", kind)
    source = train_flags.resolve_defaults(args)
    assert {n: getattr(args, n) for n in RECIPE_FIELDS} == asdict(TASKS[kind].recipe_of(kind))
    assert source == dict.fromkeys(RECIPE_FIELDS, "recipe") and args.max_length_is_default
    recipe = TASKS[kind].recipe_of(kind)  # a flag given with the recipe's own value still counts as given
    args = parse("--task", kind, "--lr", "3e-5", "--epochs", str(recipe.epochs), "--max-length", "40")
    source = train_flags.resolve_defaults(args)
    assert (args.lr, args.epochs, args.max_length) == (3e-5, recipe.epochs, 40)
    assert {n for n, s in source.items() if s == "flag"} == {"lr", "epochs", "max_length"}
    assert args.batch_size == recipe.batch_size and not args.max_length_is_default
    train_checks.check_args(args)  # every recipe passes the flag checks


def test_recipes_differ_where_the_measurements_say():
    """The figures of benchmarks/results (issue 19): not one recipe for all."""
    assert TASKS["seq2seq"].recipe_of("seq2seq").lr_head > TASKS["seq2seq"].recipe_of("seq2seq").lr
    assert TASKS["qa"].recipe_of("qa").max_length == 384
    assert TASKS["classification"].recipe_of("classification") == Recipe(lr=1e-4, batch_size=32)  # BERT's epochs
    assert TASKS["multilabel"].recipe_of("multilabel") != TASKS["classification"].recipe_of("classification")
    assert all(TASKS[k].recipe_of(k).schedule in optim.SCHEDULES for k in TASKS)


def test_lr_head_must_be_positive(files, tmp_path):  # noqa: F811
    args = parse("--train", files["sentiment"], "--model", files["model"], "--lr-head", "0", "--out",
                 str(tmp_path))
    with pytest.raises(train.cli.UsageError, match="--lr-head"):
        train_checks.check_args(args)


MODELS = {"sentence": lambda e: SentenceModel(e, 3), "tagging": lambda e: TaggerModel(e, 3), "qa": QAModel,
          "seq2seq": Seq2SeqLM}  # every task family's model


@pytest.mark.parametrize("family", sorted(MODELS))
def test_the_head_is_exactly_the_parameters_the_encoder_does_not_hold(family, files):  # noqa: F811
    """`optim.is_head` names the new layers of every task's model: no encoder weight (the LM head's tied decoder is
    the encoder's word embeddings) and every parameter that is not the encoder's."""
    encoder = Encoder.from_pretrained(files["model"])
    model = MODELS[family](encoder)
    own = {id(p) for p in encoder.parameters()}
    names = dict(model.named_parameters())
    assert {n for n in names if optim.is_head(n)} == {n for n, p in names.items() if id(p) not in own}
    assert any(optim.is_head(n) for n in names)


def test_a_run_prints_its_settings_and_records_them(files, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    argv = ["--train", files["sentiment"], "--model", files["model"], "--out", str(out), "--batch-size", "8",
            "--max-steps", "2", "--seed", "7", "--quiet"]
    train.main(argv)
    line = next(s for s in capsys.readouterr().err.splitlines() if s.startswith("settings:"))
    recipe_part, flag_part, default_part = line.split(" | ")
    assert "from the classification recipe:" in recipe_part and "lr=0.0001" in recipe_part
    assert "batch_size=8" in flag_part and "max_steps=2" in flag_part and "seed=7" in flag_part
    assert "batch_size" not in recipe_part and "weight_decay=0.01" in default_part
    saved = json.loads((out / "minift.json").read_text())["train_settings"]
    assert set(saved) == {*train_flags.HYPERPARAMETERS, "total_steps", "warmup_steps"}
    assert saved["lr"] == 1e-4 and saved["batch_size"] == 8 and saved["max_length"] == 64  # lowered to the model's
    assert saved["total_steps"] == 2 and saved["warmup_steps"] == 0 and saved["lr_head"] is None


@pytest.mark.parametrize("layer_decay", [None, 0.5])
def test_lr_head_reaches_the_optimizer_and_the_schedule_keeps_the_ratio(files, tmp_path, layer_decay):  # noqa: F811
    extra = ["--layer-decay", str(layer_decay)] if layer_decay else []
    run = train.setup(parse("--train", files["sentiment"], "--model", files["model"], "--out", str(tmp_path),
                            "--lr", "1e-4", "--lr-head", "3e-3", "--quiet", *extra))
    rate = {n: g["lr"] for g in run.opt.param_groups for n in g["param_names"]}
    plain = {n: g["lr"] for g in optim.param_groups(run.model, 1e-4, 0.01, layer_decay) for n in g["param_names"]}
    assert {n: r for n, r in rate.items() if optim.is_head(n)} == {n: 3e-3 for n in rate if optim.is_head(n)}
    assert {n: r for n, r in rate.items() if not optim.is_head(n)} == {n: plain[n] for n in rate
                                                                        if not optim.is_head(n)}
    base = [g["lr"] for g in run.opt.param_groups]
    optim.set_lr(run.opt, 0.3)
    assert [g["lr"] for g in run.opt.param_groups] == pytest.approx([0.3 * b for b in base], rel=1e-12)


def test_the_readme_table_is_the_recipes():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in text[text.index("## Defaults: each task's recipe"):].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in TASKS:
            rows[cells[0]] = cells[1:len(RECIPE_FIELDS) + 1]
    assert sorted(rows) == sorted(TASKS)
    for kind, cells in rows.items():
        recipe = asdict(TASKS[kind].recipe_of(kind))
        written = [str(v) if v is not None else "= lr" for v in recipe.values()]
        assert cells == written, kind


def test_multilabel_recipe_tunes_thresholds_unless_told_not_to():
    """Rare labels keep every sigmoid under 0.5 (GoEmotions: micro-F1 0), so the multilabel recipe tunes thresholds;
    --no-tune-thresholds keeps 0.5, and no other task tunes them by default."""
    args = parse("--task", "multilabel")
    assert train_flags.resolve_defaults(args)["tune_thresholds"] == "recipe" and args.tune_thresholds is True
    args = parse("--task", "multilabel", "--no-tune-thresholds")
    assert train_flags.resolve_defaults(args)["tune_thresholds"] == "flag" and args.tune_thresholds is False
    for kind in set(TASKS) - {"multilabel"}:
        args = parse("--task", kind)
        train_flags.resolve_defaults(args)
        assert args.tune_thresholds is False


@pytest.mark.parametrize("task", ["classification", "multilabel", "ner"])
def test_lora_takes_its_own_rates_unless_given(task):
    """Under --lora the rates the user leaves out are LoRA's (lora.RECIPE), not the task's full fine-tuning ones
    (at those, --lora stayed near chance); a rate or alpha the user gives is kept, and without --lora nothing moves."""
    def resolved(*flags):
        args = train_flags.parser().parse_args(["--train", "x.csv", "--task", task, *flags])
        train_flags.resolve_defaults(args)
        train_checks.check_lora(args)
        return args

    plain, adapted = resolved(), resolved("--lora", "8")
    assert plain.lr == TASKS[task].recipe_of(task).lr and plain.lr_head == TASKS[task].recipe_of(task).lr_head
    assert (adapted.lr, adapted.lr_head) == (lora.RECIPE["lr"], lora.RECIPE["lr_head"])
    assert adapted.lora_alpha == 8 * lora.RECIPE["alpha_per_rank"] and adapted.lora_dropout == lora.RECIPE["dropout"]
    assert adapted.settings_source["lr"] == "recipe" and "with LoRA's rates" in train_flags.settings_line(adapted)
    given = resolved("--lora", "4", "--lr", "3e-5", "--lr-head", "7e-3", "--lora-alpha", "8", "--lora-dropout", "0.2")
    assert (given.lr, given.lr_head, given.lora_alpha, given.lora_dropout) == (3e-5, 7e-3, 8, 0.2)
    assert resolved("--lora", "4", "--lr", "3e-5").lr_head == lora.RECIPE["lr_head"]
