"""The model card: README.md in every saved model folder, as Hugging Face's `Trainer` writes one.

Reference: Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019), and the cards `transformers`'
`Trainer.create_model_card` writes. It is rendered from minift.json alone (the task's settings, and the
"training" record `minift.train` adds: base model, data files and sizes, the flags that matter, the scores), so a
folder's card never says anything its minift.json does not.
"""
from __future__ import annotations

AUTO_CLASS = {"ForSequenceClassification": "AutoModelForSequenceClassification",
              "ForTokenClassification": "AutoModelForTokenClassification",
              "ForQuestionAnswering": "AutoModelForQuestionAnswering", "ForMaskedLM": "AutoModelForMaskedLM"}


def _scores(scores: dict) -> list[str]:
    """One table row per metric, a column per split."""
    splits = [s for s in ("valid", "test") if isinstance(scores.get(s), dict)]
    if not splits:
        return ["Not scored yet: the card is rewritten with the scores when training ends."]
    names = [m for m in scores[splits[0]] if isinstance(scores[splits[0]][m], (int, float))]
    lines = ["| metric | " + " | ".join({"valid": "validation", "test": "test"}[s] for s in splits) + " |",
             "|---|" + "---|" * len(splits)]
    lines += [f"| {m} | " + " | ".join(f"{scores[s].get(m, float('nan')):.4f}" for s in splits) + " |" for m in names]
    return lines


def render(meta: dict, architecture_head: str) -> str:
    """README.md's text for a model folder whose minift.json is `meta`."""
    training = meta.get("training") or {}
    data, flags = training.get("data", {}), training.get("flags", {})
    labels = meta.get("labels")
    lines = ["---", "library_name: transformers", "tags: [minift]", "---", "",
             f"# {meta['task']} model fine-tuned with minift", "",
             f"- **Base model:** `{training.get('base_model', 'unknown')}`",
             f"- **Task:** {meta['task']} (`transformers` head: {architecture_head})"]
    if labels:
        lines.append(f"- **Labels ({len(labels)}):** " + ", ".join(f"`{name}`" for name in labels))
    if meta.get("temperature"):
        lines.append(f"- **Calibrated:** softmax temperature {meta['temperature']:.4f} (`--calibrate`)")
    if meta.get("thresholds"):
        lines.append("- **Per-label thresholds** (`--tune-thresholds`): " + ", ".join(
            f"`{name}` {t:.3f}" for name, t in zip(labels or [], meta["thresholds"])))
    lines += ["", "## Data", ""]
    lines += [f"- {split}: `{data[split]}`, {data.get(split + '_rows', '?')} rows" for split in ("train", "valid",
                                                                                                  "test")
              if data.get(split)] or ["Not recorded."]
    lines += ["", "## Training flags", "", "Those set to a value (flags off, 0 or unset are left out):", ""]
    lines += [f"- `--{name.replace('_', '-')}`" + ("" if value is True else f" {value}")
              for name, value in flags.items() if value not in (None, False, 0)] or ["Not recorded."]
    lines += ["", "## Scores", "", *_scores(training.get("scores", {})), "", "## How to use", "", "```bash",
              "python -m minift.predict --model THIS_FOLDER --text \"...\"",
              "python -m minift.evaluate --model THIS_FOLDER --data labelled.csv --report", "```", "",
              "```python", "from minift.cli import load_trained",
              "task, model = load_trained(\"THIS_FOLDER\", \"cpu\")",
              "", f"from transformers import AutoTokenizer, {AUTO_CLASS.get(architecture_head, 'AutoModel')}",
              "tokenizer = AutoTokenizer.from_pretrained(\"THIS_FOLDER\")",
              f"model = {AUTO_CLASS.get(architecture_head, 'AutoModel')}.from_pretrained(\"THIS_FOLDER\")", "```"]
    if meta.get("temperature") or meta.get("thresholds"):
        lines += ["", "`transformers` gives the raw logits: divide by the temperature, or compare each label's sigmoid "
                      "with its threshold, as minift does."]
    return "\n".join(lines) + "\n"
