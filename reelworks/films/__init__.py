"""Moviegoer: read films into structured data (frames, shots, MCUs, dialogue scenes)."""
