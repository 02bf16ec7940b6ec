"""The read-only preview: library, CLI, and the Kubeflow component under kfp.local."""
import warnings

from reelworks import storage
from reelworks.cli import main
from reelworks.tweeter.compose import compose
from reelworks.tweeter.preview import preview
from reelworks.tweeter.queue import append_to_queue
from tweeter_fake_x import make_items


def test_preview_shows_next_tweets_and_changes_nothing(tmp_path, capsys):
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    items = make_items()
    append_to_queue(queue, items)
    report = preview(queue, str(tmp_path / "report"), n=2)
    markdown = storage.read_text(str(tmp_path / "report" / "report.md"))
    assert compose(items[0]).texts[0].split("\n\n")[1] in markdown  # the exact plot text
    assert items[1].title in markdown and items[2].title not in markdown
    assert report.metrics == {"queue_depth": 5, "would_skip": 0, "threads": 1,
                              "longest_tweet": report.metrics["longest_tweet"]}
    assert report.metrics["longest_tweet"] <= 280
    assert (tmp_path / "report" / "lengths.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "plotbot").iterdir()) == ["queue.jsonl"]  # read-only
    main(["tweeter", "preview", "--queue", queue, "--n", "1"])
    assert "## Next 1" in capsys.readouterr().out


def test_component_runs_under_kfp_local(tmp_path):
    import kfp.local

    from reelworks.components.tweeter import preview as component

    queue = str(tmp_path / "queue.jsonl")
    append_to_queue(queue, make_items(3))
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
                   raise_on_error=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = component(queue_uri=queue, n=2)
    markdown = open(task.outputs["report_md"].path).read()
    assert "The Last Lighthouse" in markdown and "data:image/png;base64," in markdown
    assert task.outputs["metrics"].metadata["queue_depth"] == 3  # kfp.local keeps logged metrics here
