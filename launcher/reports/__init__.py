"""Reviewer figures: pure queries (queries.py) and, later, charts."""
