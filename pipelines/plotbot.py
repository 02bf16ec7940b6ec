"""plotbot: movies CSV -> fine-tuned LM (DDP) + LSTM baseline -> generated, curated plots -> tweet queue.

Steps: prep (clean, split, EDA) -> train the language model (torchrun on one node, or a
PyTorchJob; `preset` "smollm2" fine-tunes SmolLM2-135M-Instruct from the packaged GGUF, "tiny"
trains a small GPT-2 from scratch, "" fine-tunes `base_model`: a Hub id, folder or s3:// prefix) ->
train the LSTM baseline on the same split and tokenizer -> generate -> curate (appends to the
tweet queue at `queue_uri`) -> evaluate (perplexities, pass rate, distinct-n, memorisation);
posters (on unless `posters=False`): a titled 2:3 poster for each queued plot, rendered by
`poster_model` (Stable Diffusion: "tiny", a Hub id or an s3:// prefix) and attached to its item.
"""
from kfp import dsl

from reelworks import kubeflow
from reelworks.components import plots
from reelworks.components import posters as poster_components


@dsl.pipeline(name="plotbot", description=__doc__.splitlines()[0])
def pipeline(input: str, preset: str = "smollm2", base_model: str = "gpt2", nproc: int = 2, launcher: str = "local",
             workers: int = 1, gpus_per_worker: int = 1, checkpoint_uri: str = "", max_steps: int = 300,
             lstm_steps: int = 150, block_size: int = 128, batch_size: int = 16, learning_rate: float = 0.0,
             checkpoint_every: int = 100, max_rows: int = 0, samples: int = 200, genres: str = "",
             curate_genres: str = "", keywords: str = "", queue_uri: str = "", seed: int = 0,
             posters: bool = True, poster_model: str = "tiny", poster_steps: int = 25):
    prep = kubeflow.with_s3(plots.prep(input_uri=input, max_rows=max_rows))
    train = plots.train(data=prep.outputs["data"], preset=preset, base_model=base_model, nproc=nproc,
                        launcher=launcher, workers=workers, gpus_per_worker=gpus_per_worker,
                        checkpoint_uri=checkpoint_uri, max_steps=max_steps, block_size=block_size,
                        batch_size=batch_size, learning_rate=learning_rate, checkpoint_every=checkpoint_every,
                        seed=seed)
    # The GPUs are for launcher=local: torchrun starts `nproc` processes on this pod, one per GPU
    # (a PyTorchJob's pods ask for their own).
    kubeflow.on_gpu(kubeflow.with_s3(train), nproc)
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
    with dsl.If(posters == True, "posters"):  # noqa: E712 (a KFP condition, not a Python comparison)
        # A poster per curated plot, attached to its queue item; one rendering process, one GPU.
        render = poster_components.posters_from_plots(curated=curate.outputs["curated"], queue_uri=queue_uri,
                                                      model=poster_model, steps=poster_steps, seed=seed)
        kubeflow.on_gpu(kubeflow.with_llm(kubeflow.with_s3(render)), 1)


def LOCAL_ARGUMENTS() -> dict:
    """The embedded demo: a synthetic movies CSV this project generates (no data download)."""
    from reelworks.plots.sample import sample_movies_csv
    from reelworks.settings import cache_dir

    csv = sample_movies_csv(str(cache_dir() / "plotbot-demo" / "movies.csv"), n=1500)
    # The tiny GPT-2 from scratch: fine-tuning SmolLM2-135M costs about 17 CPU-seconds per 1,000
    # tokens, about 100 times the tiny model, so 200 steps would take hours on 2 cores, far past the
    # demo's few minutes (it is the pipeline's default, for the cluster's GPUs).
    # Posters on the tiny preset in 8 steps: seconds for the whole queue on a laptop.
    return {"input": csv, "preset": "tiny", "max_steps": 200, "lstm_steps": 100, "samples": 64, "poster_steps": 8}


def INPUT_CHECKS() -> dict:
    """Checked before the first step (0 and "" mean the default)."""
    from reelworks import checks
    from reelworks.plots.train import LAUNCHERS, PRESETS

    return {"input": checks.existing_file, "preset": checks.one_of(PRESETS), "nproc": checks.at_least(1),
            "launcher": checks.one_of(LAUNCHERS), "workers": checks.at_least(1),
            "gpus_per_worker": checks.at_least(0), "max_steps": checks.at_least(0),
            "lstm_steps": checks.at_least(0), "block_size": checks.at_least(1), "batch_size": checks.at_least(1),
            "learning_rate": checks.at_least(0), "checkpoint_every": checks.at_least(1),
            "max_rows": checks.at_least(0), "samples": checks.at_least(1), "poster_steps": checks.at_least(1)}
