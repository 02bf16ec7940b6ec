"""`t2v embed`: the real packaged MiniLM, near-duplicates, a diverse sample, nearest descriptions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reelworks.errors import ReelworksError
from reelworks.t2v import embed

PARAPHRASES = [
    ("A man chases a thief across the rooftops at night.",
     "At night, a guy runs after a robber over the roofs."),
    ("The bride says goodbye to her father at the train station.",
     "At the railway station, the bride bids farewell to her dad."),
    ("Two soldiers argue about whether to surrender to the enemy.",
     "A pair of soldiers disagree over giving up to their enemies."),
    ("A little girl finds a stray puppy in the rain.",
     "In the rain, a young girl discovers a lost dog."),
]


def test_paraphrases_embed_closer_than_unrelated_descriptions(minilm):
    texts = [t for pair in PARAPHRASES for t in pair]
    vectors = embed.encode(minilm, texts)
    assert vectors.shape == (8, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    for i in range(len(PARAPHRASES)):
        a, b = 2 * i, 2 * i + 1
        paraphrase = sims[a, b]
        unrelated = max(sims[a, j] for j in range(len(texts)) if j not in (a, b))
        # Real MiniLM: paraphrases ~0.7-0.9, unrelated clip descriptions ~0.0-0.3.
        assert paraphrase > unrelated + 0.25, (PARAPHRASES[i], paraphrase, unrelated)


def test_farthest_point_takes_one_from_each_cluster():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32)
    points = np.concatenate([c + 0.05 * rng.standard_normal((20, 16)).astype(np.float32) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    picked = embed.farthest_point(points, 4, seed=3)
    assert sorted(i // 20 for i in picked) == [0, 1, 2, 3]
    assert embed.diversity(points[picked]) > embed.diversity(points[:4]) + 0.5


def test_near_duplicates_keep_the_first_of_each_group():
    v = np.array([[1, 0], [0.999, 0.0447], [0, 1], [0.0447, 0.999]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert embed.near_duplicates(v, 0.95).tolist() == [0, 2]
    # a chain a~b~c with a and c apart: b goes (close to the kept a), c stays (b was dropped);
    # the same whichever block size the similarities are computed in
    angles = np.array([0.0, 0.3, 0.6])
    chain = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    for block in (1, 2, 3):
        assert embed.near_duplicates(chain, float(np.cos(0.35)), block=block).tolist() == [0, 2]


def test_embed_picks_diverse_distinct_prompts_with_nearest_descriptions(tmp_path, minilm, monkeypatch):
    from reelworks.t2v.samples import generate_descriptions

    monkeypatch.setattr(embed, "load_encoder", lambda *a, **k: minilm)
    texts = generate_descriptions(120, seed=1)
    assert len(set(texts)) < len(texts)  # the generated set carries repeats on purpose
    csv = tmp_path / "descriptions.csv"
    csv.write_text("imdbid,videoid,description\n" + "".join(f'tt{i},v{i},"{t}"\n' for i, t in enumerate(texts))
                   + "tt999,v999,\n")
    result = embed.embed(str(csv), str(tmp_path / "out"), n=6, pool=0, seed=0, k=2)
    assert result["pool"] == 121 and result["distinct"] < 120
    prompts = result["prompts"]
    assert len(prompts) == 6 and len({p["prompt"] for p in prompts}) == 6
    assert result["diversity"] > result["random_diversity"]
    for p in prompts:
        assert len(p["nearest"]) == 2
        assert all(n["description"] != p["prompt"] for n in p["nearest"])
        assert p["nearest"][0]["similarity"] >= p["nearest"][1]["similarity"]
    out = tmp_path / "out"
    assert np.load(out / "embeddings.npy").shape == (6, 384)
    assert json.loads((out / "embed.json").read_text())["n"] == 6
    assert (out / "prompts.csv").read_text().count("\n") == 7
    assert (out / "report" / "report.html").is_file()
    # the same seed picks the same prompts
    again = embed.embed(str(csv), str(tmp_path / "again"), n=6, pool=0, seed=0, k=2)
    assert [p["prompt"] for p in again["prompts"]] == [p["prompt"] for p in prompts]


@pytest.mark.parametrize("content", ["", "imdbid,videoid,description\n"])
def test_an_empty_descriptions_file_is_one_clear_error(tmp_path, content):
    csv = tmp_path / "empty.csv"
    csv.write_text(content)
    with pytest.raises(ReelworksError, match="empty|no descriptions"):
        embed.embed(str(csv), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_the_cli_prints_one_error_line_for_an_empty_file(tmp_path, capsys):
    from reelworks.cli import main

    csv = tmp_path / "empty.csv"
    csv.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["t2v", "embed", "--descriptions", str(csv), "--output", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "empty" in err[-1] and "Traceback" not in "".join(err)


def test_a_csv_without_a_text_column_is_refused(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ReelworksError, match="no description/prompt/text/caption column"):
        embed.read_descriptions(str(csv))


def test_the_shared_descriptions_are_sampled_with_the_seed(shared_data):
    path = shared_data / "captions" / "descriptions.csv"
    full = embed.read_descriptions(str(path))
    assert len(full.texts) == 34091
    one, two = (embed.read_descriptions(str(path), pool=50, seed=7) for _ in range(2))
    assert one.texts == two.texts and len(one.texts) == 50
    assert embed.read_descriptions(str(path), pool=50, seed=8).texts != one.texts
