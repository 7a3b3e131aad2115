"""Evaluation suite: run questions through the assistant and score the answers.

``evals.metrics`` holds the scoring functions (pure, no model calls); the runner is
``python -m evals``.
"""
