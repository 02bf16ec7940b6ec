"""plotbot: movies CSV -> GPT-2 (DDP) + LSTM baseline -> generated, curated plots -> tweet queue.

Steps: prep (clean, split, EDA) -> train GPT-2 (torchrun on one node, or a PyTorchJob) ->
train the LSTM baseline on the same split and tokenizer -> generate -> curate (appends to the
tweet queue at `queue_uri`) -> evaluate (perplexities, pass rate, distinct-n, memorisation).
"""
from kfp import dsl

from reelworks import kubeflow
from reelworks.components import plots


@dsl.pipeline(name="plotbot", description=__doc__.splitlines()[0])
def pipeline(input: str, preset: str = "tiny", base_model: str = "gpt2", nproc: int = 2, launcher: str = "local",
             workers: int = 1, gpus_per_worker: int = 1, checkpoint_uri: str = "", max_steps: int = 300,
             lstm_steps: int = 150, block_size: int = 128, batch_size: int = 16, learning_rate: float = 3e-3,
             checkpoint_every: int = 100, max_rows: int = 0, samples: int = 200, genres: str = "",
             curate_genres: str = "", keywords: str = "", queue_uri: str = "", seed: int = 0):
    prep = kubeflow.with_s3(plots.prep(input_uri=input, max_rows=max_rows))
    train = plots.train(data=prep.outputs["data"], preset=preset, base_model=base_model, nproc=nproc,
                        launcher=launcher, workers=workers, gpus_per_worker=gpus_per_worker,
                        checkpoint_uri=checkpoint_uri, max_steps=max_steps, block_size=block_size,
                        batch_size=batch_size, learning_rate=learning_rate, checkpoint_every=checkpoint_every,
                        seed=seed)
    # The GPU is for launcher=local (torchrun on this pod); a PyTorchJob's pods ask for their own.
    kubeflow.on_gpu(kubeflow.with_s3(train))
    lstm = plots.train_lstm(data=prep.outputs["data"], tokenizer_model=train.outputs["model"], nproc=nproc,
                            checkpoint_uri=checkpoint_uri, max_steps=lstm_steps, block_size=block_size,
                            batch_size=batch_size, learning_rate=learning_rate, checkpoint_every=checkpoint_every,
                            seed=seed)
    kubeflow.with_s3(lstm)
    generate = plots.generate(model=train.outputs["model"], n=samples, genres=genres, seed=seed)
    kubeflow.on_gpu(kubeflow.with_s3(generate))
    curate = kubeflow.with_s3(plots.curate(samples=generate.outputs["samples"], data=prep.outputs["data"],
                                           queue_uri=queue_uri, genres=curate_genres, keywords=keywords))
    kubeflow.with_s3(plots.evaluate(gpt2=train.outputs["model"], lstm=lstm.outputs["model"],
                                    curated=curate.outputs["curated"], samples=generate.outputs["samples"]))


def LOCAL_ARGUMENTS() -> dict:
    """The embedded demo: a synthetic movies CSV this project generates (no data download)."""
    from reelworks.plots.sample import sample_movies_csv
    from reelworks.settings import cache_dir

    csv = sample_movies_csv(str(cache_dir() / "plotbot-demo" / "movies.csv"), n=1500)
    return {"input": csv, "max_steps": 200, "lstm_steps": 100, "samples": 64}
