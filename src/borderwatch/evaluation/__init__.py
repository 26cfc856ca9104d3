"""Evaluation: readers of the labelled datasets and metrics of what ``detect`` writes."""
