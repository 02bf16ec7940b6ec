"""Test settings shared by the plot-bot tests (importable; conftest modules are not)."""

# Small and fast: a few hundred movies, short blocks, a handful of steps.
TINY = dict(max_steps=24, checkpoint_every=8, log_every=4, batch_size=8, block_size=64, warmup_steps=4,
            vocab_size=600, threads=1)
