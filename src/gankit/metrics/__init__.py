"""Evaluation: feature networks, FID/KID/IS/precision-recall/digit-FD, cached references."""

from gankit.metrics.evaluator import METRICS, MetricResult, evaluate, format_result
from gankit.metrics.reference import Reference

__all__ = ["METRICS", "MetricResult", "Reference", "evaluate", "format_result"]
