"""Evaluation metrics, each written from its formula (numpy + the standard library only).

Grouped by task family; every family has a ``*_summary`` helper returning the headline
numbers the training loop logs:

* classification.py  accuracy, precision / recall / F1, confusion matrix, ROC AUC, MCC, the per-class report
* calibration.py     expected calibration error, reliability bins, temperature scaling
* curves.py          ROC and precision-recall curve points
* multilabel.py      subset accuracy, hamming loss, micro / macro F1 on indicator matrices, tuned thresholds
* regression.py      MSE, MAE, R^2, Pearson, Spearman
* generation.py      BLEU (sacrebleu semantics) and the 13a tokenizer; rouge.py: ROUGE
* qa.py              SQuAD v1.1 exact match and token F1
* tagging.py         entity-level P / R / F1 for BIO tags (seqeval semantics)
"""
from .calibration import (ReliabilityBins, apply_temperature, expected_calibration_error, fit_temperature, nll,
                          reliability_bins)
from .classification import (UndefinedMetricWarning, accuracy, classification_report, classification_summary,
                             confusion_matrix, f1, format_confusion_matrix, format_report, matthews_corrcoef,
                             precision, precision_recall_f1, recall, roc_auc)
from .curves import precision_recall_curve, roc_curve
from .generation import BLEUScore, bleu, bleu_from_stats, generation_summary, sentence_bleu, tokenize_13a
from .multilabel import (best_threshold, best_thresholds, hamming_loss, multilabel_f1, multilabel_summary,
                         subset_accuracy, threshold_logits)
from .qa import exact_match, normalize_answer, squad_scores, token_f1
from .regression import average_ranks, mae, mse, pearson, r2, regression_summary, spearman
from .rouge import Score, rouge, rouge_l, rouge_lsum, rouge_n, rouge_score, rouge_tokenize
from .tagging import (entity_scores, get_entities, ids_to_tags, split_tag, tag_accuracy, tagging_report,
                      tagging_summary)

__all__ = [
    "ReliabilityBins", "apply_temperature", "expected_calibration_error", "fit_temperature", "nll",
    "reliability_bins", "classification_report", "format_confusion_matrix", "format_report",
    "UndefinedMetricWarning", "accuracy", "classification_summary", "confusion_matrix", "f1",
    "matthews_corrcoef", "precision", "precision_recall_f1", "recall", "roc_auc",
    "precision_recall_curve", "roc_curve",
    "BLEUScore", "bleu", "bleu_from_stats", "generation_summary", "sentence_bleu", "tokenize_13a",
    "best_threshold", "best_thresholds", "hamming_loss", "multilabel_f1", "multilabel_summary", "subset_accuracy",
    "threshold_logits",
    "exact_match", "normalize_answer", "squad_scores", "token_f1",
    "average_ranks", "mae", "mse", "pearson", "r2", "regression_summary", "spearman",
    "Score", "rouge", "rouge_l", "rouge_lsum", "rouge_n", "rouge_score", "rouge_tokenize",
    "entity_scores", "get_entities", "ids_to_tags", "split_tag", "tag_accuracy", "tagging_report",
    "tagging_summary",
]
