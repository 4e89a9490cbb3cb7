"""Stage 6: retrieval. Ranking scores, metrics (R@K, MedR, MeanR, AVG, BS@K), QB-Norm hubness reduction,
paired evaluation, and (in ``embed``/``index``/``protocol``) embedding, vector search and checkpoint evaluation."""

from .evaluate import evaluate_retrieval, format_table
from .hubness import (
    QuerybankStats,
    apply_hubness,
    dynamic_inverted_softmax,
    fit_querybank,
    inverted_softmax,
    load_querybank,
    save_querybank,
)
from .metrics import (
    beat_similarity_at_k,
    group_ranks,
    positive_ranks,
    rank_breakdown,
    recall_metrics,
    top_k_indices,
)
from .scoring import ModalityEmbeddings, Scorer

__all__ = [
    "ModalityEmbeddings",
    "QuerybankStats",
    "Scorer",
    "apply_hubness",
    "beat_similarity_at_k",
    "dynamic_inverted_softmax",
    "evaluate_retrieval",
    "fit_querybank",
    "format_table",
    "group_ranks",
    "inverted_softmax",
    "load_querybank",
    "positive_ranks",
    "rank_breakdown",
    "recall_metrics",
    "save_querybank",
    "top_k_indices",
]
