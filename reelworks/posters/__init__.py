"""Posters: genre classification from posters and genre-conditioned poster generation."""
