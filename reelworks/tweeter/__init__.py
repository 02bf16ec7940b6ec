"""Tweeter: publish one curated plot per run, exactly once."""
