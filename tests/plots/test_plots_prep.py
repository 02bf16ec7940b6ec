import json
import subprocess
import sys

import pytest

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.plots import corpus
from reelworks.plots.prep import is_validation, parse_genres, prep

IMDB_CSV = """rank,title,genre,description,director,year
1,Guardians of the Galaxy,"Action,Adventure,Sci-Fi",A group of intergalactic criminals are forced to work together to stop a fanatical warrior.,James Gunn,2014
2,Prometheus,"Adventure,Mystery,Sci-Fi","Following clues to the origin of mankind, a team finds a structure on a distant moon.",Ridley Scott,2012
3,Split,"Horror,Thriller",Three girls are kidnapped by a man with a diagnosed 23 distinct personalities and must try to escape.,M. Night Shyamalan,2016
4,Sing,"Animation,Comedy",Short.,Christophe Lourdelet,2016
5,Prometheus,"Adventure,Mystery,Sci-Fi","Following clues to the origin of mankind, a team finds a structure on a distant moon.",Ridley Scott,2012
6,Old Film,Drama,An old man remembers the war and the village he left behind when he was a boy.,Someone,1950
"""


def _lines(uri, name):
    return storage.read_text(storage.join(uri, name)).splitlines()


def test_corpus_format_round_trips():
    text = corpus.format_example("Split", "Three girls are kidnapped.", ["Horror", "Thriller"])
    assert text == "<|genre|> Horror, Thriller<|title|> Split<|plot|> Three girls are kidnapped.<|endoftext|>"
    parsed = corpus.parse_example(corpus.END + text)
    assert (parsed.title, parsed.plot, parsed.genres, parsed.finished) == (
        "Split", "Three girls are kidnapped.", ["Horror", "Thriller"], True)
    cut = corpus.parse_example(corpus.prompt(title="Jaws") + " A shark eats")
    assert (cut.title, cut.plot, cut.finished) == ("Jaws", "A shark eats", False)
    assert corpus.normalize("  Ｔhe\u00a0<|plot|> end\x07  ") == "The end"


def test_imdb_shape_cleans_dedupes_and_filters(tmp_path):
    src = tmp_path / "imdb.csv"
    src.write_text(IMDB_CSV)
    out = str(tmp_path / "data")
    report = prep(str(src), out, valid_fraction=0.3, min_year=2000, genre_dropout=0.0)
    summary = json.loads(storage.read_text(f"{out}/prep.json"))
    assert summary["kept"] == 3
    assert summary["dropped"] == {"short_plot": 1, "duplicate": 1, "year": 1}
    assert summary["columns"]["plot"] == "description" and summary["columns"]["year"] == "year"
    examples = _lines(out, "train.txt") + _lines(out, "valid.txt")
    assert len(examples) == 3 and all(e.endswith(corpus.END) and e.startswith(corpus.GENRE) for e in examples)
    assert "Old Film" in _lines(out, "titles.txt")  # real titles include filtered rows
    assert {"movies_per_year.png", "genres.png", "plot_lengths.png"} <= set(report.images)
    assert storage.exists(f"{out}/report/report.html")


def test_validation_split_is_deterministic_by_id():
    ids = [str(i) for i in range(2000)]
    first = [is_validation(i, 0.1) for i in ids]
    assert first == [is_validation(i, 0.1) for i in ids]
    assert 120 < sum(first) < 280


def test_column_mapping_and_latin1_file(tmp_path):
    src = tmp_path / "films.csv"
    rows = [f'Amélie {i},"Une jeune serveuse décide de changer la vie des gens autour d\'elle à Paris, jour {i}."'
            for i in range(8)]
    src.write_bytes(("Name,Synopsis\n" + "\n".join(rows) + "\n").encode("latin-1"))
    out = str(tmp_path / "data")
    prep(str(src), out, columns="title=Name,plot=Synopsis", valid_fraction=0.5)
    text = "".join(_lines(out, "train.txt") + _lines(out, "valid.txt"))
    assert "Amélie" in text and "décide" in text


def test_tmdb5000_json_genres():
    assert parse_genres('[{"id": 28, "name": "Action"}, {"id": 12, "name": "Adventure"}]') == ["Action", "Adventure"]
    assert parse_genres("Drama|Crime") == ["Drama", "Crime"]


def test_genres_are_listed_once():
    """Exports repeat genres and a model writes one twice; a report would show "Fantasy, Fantasy"."""
    assert parse_genres("Fantasy,Drama,fantasy|Drama") == ["Fantasy", "Drama"]
    assert parse_genres('[{"name": "Action"}, {"name": "Action"}]') == ["Action"]
    generated = corpus.parse_example("<|genre|> Fantasy, Fantasy, Horror<|title|> X<|plot|> Y.<|endoftext|>")
    assert generated.genres == ["Fantasy", "Horror"]


def test_sample_plots_use_the_right_article(tmp_path):
    from reelworks.plots.sample import sample_movies_csv, with_article

    text = storage.read_text(sample_movies_csv(str(tmp_path / "movies.csv"), n=600))
    assert ", an ambitious " in text and ", a young " in text
    assert not any(f", a {vowel}" in text for vowel in "aeiou")
    assert [with_article(w) for w in ("hour", "unique", "honest", "European", "owl")] == [
        "an hour", "a unique", "an honest", "a European", "an owl"]


def test_bad_input_is_one_clear_line(tmp_path, movies_csv):
    src = tmp_path / "bad.csv"
    src.write_text("film,year\nA,2000\n")
    with pytest.raises(ReelworksError, match="no usable title column"):
        prep(str(src), str(tmp_path / "out"))
    with pytest.raises(ReelworksError, match="no movies left"):
        prep(movies_csv, str(tmp_path / "out"), genres=["Western"])
    assert not (tmp_path / "out").exists()
    result = subprocess.run([sys.executable, "-m", "reelworks", "plots", "prep", "--input", str(src),
                             "--output", str(tmp_path / "o2")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.stderr


def test_prep_on_s3(s3_bucket, movies_csv):
    storage.upload_file(movies_csv, f"{s3_bucket}/in/movies.csv")
    prep(f"{s3_bucket}/in/movies.csv", f"{s3_bucket}/data", max_rows=200)
    summary = json.loads(storage.read_text(f"{s3_bucket}/data/prep.json"))
    assert summary["rows"] == 200 and summary["train"] + summary["valid"] == summary["kept"]
    assert {"train.txt", "valid.txt", "titles.txt", "movies.jsonl", "report/report.md"} <= set(
        storage.list_keys(f"{s3_bucket}/data"))


@pytest.mark.shared_data
def test_real_tmdb_and_imdb_exports(shared_data, tmp_path):
    tmdb = prep(str(shared_data / "plots" / "top10K-TMDB-movies.csv"), str(tmp_path / "tmdb"), max_rows=1500)
    assert tmdb.metrics["movies_kept"] > 1000
    assert json.loads((tmp_path / "tmdb" / "prep.json").read_text())["columns"]["plot"] == "overview"
    imdb = prep(str(shared_data / "plots" / "IMDB-Movie-Data-1000.csv"), str(tmp_path / "imdb"))
    assert imdb.metrics["movies_kept"] > 900


def test_movies_per_year_chart_draws_one_bar_per_year(tmp_path, monkeypatch):
    """Spies on the real matplotlib: every year from the first to the last gets its own, separate bar."""
    from matplotlib.axes import Axes

    drawn = []
    real_bar = Axes.bar

    def recording_bar(self, x, height, *args, **kwargs):
        bars = real_bar(self, x, height, *args, **kwargs)
        drawn.append((self, x, height, bars))
        return bars

    monkeypatch.setattr(Axes, "bar", recording_bar)
    src = tmp_path / "imdb.csv"
    src.write_text(IMDB_CSV)
    report = prep(str(src), str(tmp_path / "data"), valid_fraction=0.3, min_year=2000, genre_dropout=0.0)
    assert "movies_per_year.png" in report.images
    # The genres chart (barh) and the plot lengths (hist) draw bars too: take the chart whose x axis is years.
    (years, counts, bars), = [call[1:] for call in drawn if call[0].get_xlabel() == "year"]  # 2012, 2014, 2016
    assert list(years) == [2012, 2013, 2014, 2015, 2016] and list(counts) == [1, 0, 1, 0, 1]
    assert all(b.get_width() < 1 for b in bars)  # gaps between neighbouring years' bars
