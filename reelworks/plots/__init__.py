"""Plot bot: learn to write movie plots, generate and curate them for the tweeter."""
