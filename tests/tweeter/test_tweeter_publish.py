"""Publishing through tweepy's real HTTP layer against recorded-shape X API responses."""
import json
import logging

import pytest

from reelworks import storage
from reelworks.errors import NotFoundError
from reelworks.tweeter.compose import compose
from reelworks.tweeter.ledger import Ledger
from reelworks.tweeter.publish import EXIT_TRY_LATER, PublishError, PublishOptions, parse_not_before, publish
from reelworks.tweeter.queue import append_to_queue, read_queue
from tweeter_fake_x import make_items


class Clock:
    """A clock whose sleep moves time forward instantly (rate-limit waits, backoff, --not-before)."""

    def __init__(self, now: float):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(fake_x):
    clock = Clock(fake_x.read()["now"])
    return clock


def run(queue_uri, clock, **options):
    return publish(queue_uri, PublishOptions(**options), clock=clock, sleep=clock.sleep)


def texts_of(n):
    return [compose(item).texts for item in make_items(n)]


def test_publishes_oldest_first_once_each(fake_x, clock, queue_uri):
    expected = texts_of(4)
    for i in range(4):
        result = run(queue_uri, clock)
        assert result.outcome == "published"
        assert result.texts == expected[i]
        assert result.tweet_ids == [fake_x.tweets[-1]["id"]]
        assert result.queue_depth == 3 - i
    assert [t["text"] for t in fake_x.tweets] == [t[0] for t in expected]
    result = run(queue_uri, clock)
    assert result.outcome == "nothing" and "nothing to publish" in result.message
    assert len(fake_x.tweets) == 4
    # The queue is never rewritten: what was published lives in the ledger.
    assert len(read_queue(queue_uri).items) == 4
    ledger = Ledger(storage.join(queue_uri.rsplit("/", 1)[0], "ledger"))
    assert all(r.done for r in ledger.snapshot().values())
    assert ledger.last()["tweet_ids"] == [fake_x.tweets[-1]["id"]]


def test_random_order_is_reproducible_with_seed(fake_x, clock, queue_uri):
    first = run(queue_uri, clock, order="random", seed=7, dry_run=True).plot_id
    storage.delete_prefix(queue_uri.rsplit("/", 1)[0] + "/outbox")
    again = run(queue_uri, clock, order="random", seed=7, dry_run=True).plot_id
    assert first == again


def test_thread_posts_replies_in_order(fake_x, clock, tmp_path):
    queue = str(tmp_path / "q.jsonl")
    append_to_queue(queue, make_items()[4:])  # The Cartographer: two tweets
    result = run(queue, clock)
    tweets = fake_x.tweets
    assert len(result.texts) == 2 and [t["text"] for t in tweets] == result.texts
    assert tweets[0]["reply_to"] is None and tweets[1]["reply_to"] == tweets[0]["id"]
    assert result.tweet_ids == [t["id"] for t in tweets]


def test_overflow_skip_marks_and_moves_on(fake_x, clock, tmp_path):
    queue = str(tmp_path / "q.jsonl")
    append_to_queue(queue, make_items()[4:] + make_items(1))
    result = run(queue, clock, overflow="skip")
    assert result.skipped and "over 280" in result.skipped[0][1]
    assert result.outcome == "published" and result.title == "The Last Lighthouse"
    assert len(fake_x.tweets) == 1


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 96), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


POSTER = _png()  # a real image: the tweeter decodes what it uploads


def write_poster(path) -> None:
    """A poster where `posters from-plots` keeps them: <queue folder>/posters/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(POSTER)


def queue_with_image(tmp_path, image: str | None = None) -> str:
    queue = str(tmp_path / "q.jsonl")
    item = make_items(1)[0]
    item.image = image
    append_to_queue(queue, [item])
    return queue


def test_image_is_uploaded_and_attached(fake_x, clock, tmp_path, s3_bucket):
    image = f"{s3_bucket}/plotbot/posters/lighthouse.png"
    storage.write_bytes(image, POSTER)
    queue = f"{s3_bucket}/plotbot/queue.jsonl"
    item = make_items(1)[0]
    item.image = image
    append_to_queue(queue, [item])
    run(queue, clock)
    assert fake_x.calls("upload") == 1
    assert fake_x.tweets[0]["media_ids"] == fake_x.read()["media"]
    # X API v2 one-shot upload: multipart with the file and media_category=tweet_image, OAuth 1.0a signed.
    upload = fake_x.read()["uploads"][0]
    assert upload["category"] == "tweet_image" and upload["bytes"] > len(POSTER)


def test_missing_image_posts_nothing_and_keeps_the_plot(fake_x, clock, tmp_path):
    queue = queue_with_image(tmp_path, str(tmp_path / "posters" / "nope.png"))
    with pytest.raises(PublishError, match="not found; nothing was posted.*--allow-no-image") as info:
        run(queue, clock)
    assert info.value.exit_code == 2 and fake_x.tweets == [] and fake_x.calls("upload") == 0
    # The claim was released: once the image is there, the next run posts the plot with it.
    write_poster(tmp_path / "posters" / "nope.png")
    result = run(queue, clock)
    assert result.outcome == "published" and fake_x.tweets[0]["media_ids"] == fake_x.read()["media"]


def test_missing_image_with_allow_no_image_posts_text_alone(fake_x, clock, tmp_path, caplog):
    queue = queue_with_image(tmp_path, str(tmp_path / "posters" / "nope.png"))
    assert run(queue, clock, allow_no_image=True).outcome == "published"
    assert fake_x.tweets[0]["media_ids"] == [] and "not found" in caplog.text


@pytest.mark.parametrize("allow_no_image", [False, True])
def test_image_refused_by_x(fake_x, clock, tmp_path, allow_no_image):
    write_poster(tmp_path / "posters" / "poster.png")
    queue = queue_with_image(tmp_path, str(tmp_path / "posters" / "poster.png"))
    fake_x.script("upload", "400")
    if not allow_no_image:
        with pytest.raises(PublishError, match="X refused the image.*media type unrecognized") as info:
            run(queue, clock)
        assert info.value.exit_code == 2 and fake_x.tweets == [] and fake_x.calls("upload") == 1
        # Not retried (a 400 is final), and not blocked: the next run tries again and posts.
        assert run(queue, clock).outcome == "published" and fake_x.tweets[0]["media_ids"]
    else:
        assert run(queue, clock, allow_no_image=True).outcome == "published"
        assert fake_x.tweets[0]["media_ids"] == [] and fake_x.calls("upload") == 1


def test_image_upload_timeout_retries_then_keeps_the_plot(fake_x, clock, tmp_path):
    write_poster(tmp_path / "posters" / "poster.png")
    queue = queue_with_image(tmp_path, str(tmp_path / "posters" / "poster.png"))
    fake_x.script("upload", "timeout", "timeout")
    with pytest.raises(PublishError, match=r"X POST /2/media/upload: timed out.*stays queued") as info:
        run(queue, clock, retries=1, allow_no_image=True)  # X failing is never "post without"
    assert info.value.exit_code == EXIT_TRY_LATER and fake_x.tweets == [] and fake_x.calls("upload") == 2
    fake_x.script("upload", "timeout")
    result = run(queue, clock, retries=1)
    assert result.outcome == "published" and fake_x.tweets[0]["media_ids"] == fake_x.read()["media"][-1:]


def test_dry_run_copies_the_image_into_the_outbox(fake_x, clock, tmp_path, monkeypatch):
    write_poster(tmp_path / "posters" / "poster.png")
    queue = queue_with_image(tmp_path, str(tmp_path / "posters" / "poster.png"))
    result = run(queue, clock, dry_run=True)
    record = json.loads(storage.read_text(str(tmp_path / "outbox" / "tweets" / f"{result.plot_id}-0.json")))
    assert record["image_source"] == [str(tmp_path / "posters" / "poster.png")]
    assert record["image"] == [str(tmp_path / "outbox" / "tweets" / f"{result.plot_id}-0.png")]
    assert storage.read_bytes(record["image"][0]) == POSTER
    assert record["alt_text"] == ["Movie poster for The Last Lighthouse, a Sci-Fi, Drama film."]
    assert fake_x.calls("upload") == 0 and fake_x.tweets == []


def test_duplicate_content_counts_as_posted(fake_x, clock, queue_uri):
    text = texts_of(1)[0][0]
    tweet_id = fake_x.post_directly(text)  # already on X, unknown to the ledger
    result = run(queue_uri, clock)
    assert result.outcome == "published" and result.tweet_ids == [tweet_id]
    assert len(fake_x.tweets) == 1
    part = json.loads(storage.read_text(queue_uri.rsplit("/", 1)[0] + f"/ledger/{result.plot_id}/part-0.json"))
    assert part["how"] == "duplicate"


@pytest.mark.parametrize("failure", ["503", "500", "timeout", "connect"])
def test_transient_errors_retry_with_backoff(fake_x, clock, queue_uri, failure):
    fake_x.script("create", failure, failure)
    result = run(queue_uri, clock, backoff=2)
    assert result.outcome == "published" and len(fake_x.tweets) == 1
    assert fake_x.calls("create") == 3
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0] * 0.6  # exponential, jittered


@pytest.mark.parametrize("failure", ["posted+timeout", "posted+503"])
def test_lost_response_is_found_not_reposted(fake_x, clock, queue_uri, failure):
    fake_x.read()
    with fake_x.state() as state:
        state["duplicate_check"] = False  # prove the timeline lookup alone prevents the double post
    fake_x.script("create", failure)
    result = run(queue_uri, clock)
    assert result.outcome == "published"
    assert len(fake_x.tweets) == 1 and result.tweet_ids == [fake_x.tweets[0]["id"]]
    assert fake_x.calls("create") == 1 and fake_x.calls("timeline") >= 1


def test_transient_errors_exhausted_exit_try_later_and_keep_the_plot(fake_x, clock, queue_uri):
    fake_x.script("create", *["503"] * 5)
    with pytest.raises(PublishError, match="stays queued") as info:
        run(queue_uri, clock, retries=2)
    assert info.value.exit_code == EXIT_TRY_LATER and fake_x.calls("create") == 3
    assert fake_x.tweets == []
    # The claim is left for reconciliation: a later run (after the lease) posts the same plot.
    clock.now += 3600
    result = run(queue_uri, clock)
    assert result.outcome == "published" and result.title == "The Last Lighthouse"
    assert len(fake_x.tweets) == 1


def test_rate_limit_waits_for_reset_within_bound(fake_x, clock, queue_uri):
    fake_x.script("create", "429:120")
    result = run(queue_uri, clock, max_rate_limit_wait=300)
    assert result.outcome == "published"
    assert 120 <= clock.sleeps[0] <= 122


def test_rate_limit_beyond_bound_exits_with_plot_still_queued(fake_x, clock, queue_uri):
    fake_x.script("create", "429:3600")
    with pytest.raises(PublishError, match="rate limit") as info:
        run(queue_uri, clock, max_rate_limit_wait=300)
    assert info.value.exit_code == EXIT_TRY_LATER and fake_x.tweets == [] and clock.sleeps == []
    # Released: the very next run (no lease to wait out) posts that same plot.
    result = run(queue_uri, clock)
    assert result.title == "The Last Lighthouse" and len(fake_x.tweets) == 1


@pytest.mark.parametrize("failure, message", [("401", "401 Unauthorized"), ("403", "403 Forbidden")])
def test_auth_errors_fail_fast_and_consume_nothing(fake_x, clock, queue_uri, failure, message):
    fake_x.script("me", failure)
    with pytest.raises(PublishError, match=message) as info:
        run(queue_uri, clock)
    assert info.value.exit_code == 2 and fake_x.calls("me") == 1 and fake_x.calls("create") == 0
    assert not storage.exists(queue_uri.rsplit("/", 1)[0] + "/ledger")  # nothing claimed


def test_auth_error_on_post_releases_the_claim(fake_x, clock, queue_uri):
    fake_x.script("create", "401")
    with pytest.raises(PublishError, match="stays queued"):
        run(queue_uri, clock)
    assert fake_x.calls("create") == 1
    assert run(queue_uri, clock).title == "The Last Lighthouse"


def test_wrong_credentials_get_x_401(fake_x, clock, queue_uri, monkeypatch):
    monkeypatch.setenv("X_API_KEY", "not-the-key")  # the fake checks the OAuth 1.0a header
    with pytest.raises(PublishError, match="401"):
        run(queue_uri, clock)


def test_rejected_text_is_skipped_and_the_next_plot_posted(fake_x, clock, queue_uri):
    fake_x.script("create", "400")
    result = run(queue_uri, clock)
    assert result.skipped and "too long" in result.skipped[0][1]
    assert result.title == "Heist at Dawn" and len(fake_x.tweets) == 1


def test_missing_credentials_fail_before_any_claim(fake_x, clock, queue_uri, monkeypatch):
    monkeypatch.delenv("X_ACCESS_TOKEN_SECRET")
    monkeypatch.setenv("X_API_SECRET", "  ")
    with pytest.raises(PublishError, match="X_API_SECRET, X_ACCESS_TOKEN_SECRET") as info:
        run(queue_uri, clock)
    assert info.value.exit_code == 2 and fake_x.calls("me") == 0
    assert not storage.exists(queue_uri.rsplit("/", 1)[0] + "/ledger")


def test_empty_and_malformed_queue(fake_x, clock, tmp_path, caplog):
    queue = str(tmp_path / "q.jsonl")
    with pytest.raises(NotFoundError, match="no tweet queue at"):  # no queue file at all: a wrong --queue
        run(queue, clock)
    storage.write_text(queue, "")
    assert run(queue, clock).outcome == "nothing"
    good = make_items(1)[0]
    storage.write_text(queue, "{not json\n" + json.dumps({"title": "x"}) + "\n" + good.to_json() + "\n"
                       + json.dumps({"id": "../../etc", "title": "Evil", "plot": "Escapes the ledger."}) + "\n")
    result = run(queue, clock)
    assert [n for n, _ in result.bad_lines] == [1, 2, 0]
    assert result.outcome == "published" and result.plot_id == good.id
    assert "line 1 skipped" in caplog.text
    assert not (tmp_path / "etc").exists()


def test_missing_ledger_prefix_is_created_on_s3(fake_x, clock, s3_bucket):
    queue = f"{s3_bucket}/plotbot/queue.jsonl"
    append_to_queue(queue, make_items(2))
    result = run(queue, clock, ledger=f"{s3_bucket}/elsewhere/ledger")
    assert result.outcome == "published"
    assert storage.exists(f"{s3_bucket}/elsewhere/ledger/{result.plot_id}/done.json")


def test_not_before_waits(fake_x, clock, queue_uri):
    target = clock.now + 90
    result = run(queue_uri, clock, not_before=target)
    assert result.outcome == "published" and clock.now >= target and sum(clock.sleeps) >= 90
    assert fake_x.tweets[0]["created_at"] <= fake_x.read()["now"]


def test_parse_not_before():
    noon = parse_not_before("2026-11-21T12:00:00Z")
    assert noon == parse_not_before("2026-11-21T12:00:00") == parse_not_before("2026-11-21T13:00:00+01:00")
    assert parse_not_before("18:30", now=noon) == noon + 6.5 * 3600
    with pytest.raises(Exception, match="ISO 8601"):
        parse_not_before("tomorrow")


def test_dry_run_needs_no_credentials_and_leaves_real_ledger(fake_x, clock, queue_uri, monkeypatch):
    for name in ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"):
        monkeypatch.delenv(name)
    base = queue_uri.rsplit("/", 1)[0]
    first = run(queue_uri, clock, dry_run=True)
    second = run(queue_uri, clock, dry_run=True)
    assert (first.title, second.title) == ("The Last Lighthouse", "Heist at Dawn")
    outbox = json.loads(storage.read_text(f"{base}/outbox/tweets/{first.plot_id}-0.json"))
    assert outbox["text"] == texts_of(1)[0][0] and outbox["weighted_length"] <= 280
    assert not storage.exists(f"{base}/ledger") and fake_x.tweets == [] and fake_x.calls("me") == 0
    # What is left to publish as the dry runs see it; the real queue is untouched.
    assert (first.queue_depth, second.queue_depth) == (3, 2)
    assert first.real_queue_depth == second.real_queue_depth == 4


def test_dry_run_previews_what_real_publisher_posts_next(fake_x, clock, queue_uri):
    run(queue_uri, clock)  # really publishes plot 1
    assert run(queue_uri, clock, dry_run=True).title == "Heist at Dawn"
    assert run(queue_uri, clock).title == "Heist at Dawn"  # the dry run consumed nothing


def test_secrets_never_logged(fake_x, clock, queue_uri, caplog, capfd, x_credentials):
    from reelworks.progress import setup_logging

    setup_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    fake_x.script("create", "timeout", "503", "posted+503")
    fake_x.script("timeline", "500")
    run(queue_uri, clock)
    fake_x.script("create", "403")
    with pytest.raises(PublishError) as info:
        run(queue_uri, clock)
    fake_x.script("me", "401")
    with pytest.raises(PublishError) as info2:
        run(queue_uri, clock)
    logging.getLogger("requests_oauthlib").setLevel(logging.NOTSET)
    captured = capfd.readouterr()
    everything = caplog.text + captured.out + captured.err + str(info.value) + str(info2.value)
    assert "Making API request" in everything  # tweepy's debug lines were on
    for name, value in x_credentials.items():
        assert value not in everything, name


def test_image_upload_failure_releases_the_plot(fake_x, clock, tmp_path):
    image = tmp_path / "posters" / "poster.png"
    write_poster(image)
    queue = str(tmp_path / "q.jsonl")
    item = make_items(1)[0]
    item.image = str(image)
    append_to_queue(queue, [item])
    fake_x.script("upload", "503", "503", "503")
    with pytest.raises(PublishError, match="stays queued") as info:
        run(queue, clock, retries=2)
    assert info.value.exit_code == EXIT_TRY_LATER and fake_x.tweets == []
    # Nothing was in flight, so the next run (no lease to wait out) posts it, image attached.
    result = run(queue, clock)
    assert result.outcome == "published" and fake_x.tweets[0]["media_ids"] == fake_x.read()["media"]
