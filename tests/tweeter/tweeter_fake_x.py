"""A stateful X account behind tweepy's real HTTP layer, served with the `responses` library.

The bodies and headers are the shapes X API v2 (tweets, users, media upload) return: 201 created,
403 duplicate content, 403 client-forbidden, 401, 429 with x-rate-limit-reset, 5xx, plus
timeouts and connection errors raised inside requests. Requests must carry a real OAuth 1.0a
signature made with the expected consumer key and token, or they get X's 401.

State (the account's tweets, the failure script) lives in a JSON file under an flock, so
publishers forked into other processes share one account with the test.
"""
from __future__ import annotations

import fcntl
import html
import json
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests
import responses

from reelworks.tweeter.queue import QueueItem

API = "https://api.twitter.com"
UPLOAD = "https://api.x.com/2/media/upload"  # v2; the retired v1.1 upload.twitter.com answers nothing here
METADATA = "https://api.x.com/2/media/metadata"  # v2: an uploaded image's alt text
MAX_IMAGE_BYTES = 5 * 2**20  # X takes images of at most 5 MB
MAX_ALT_TEXT = 1000
USER_ID = "2244994945"
USERNAME = "reelworks_bot"
FIRST_ID = 1445880548472328192

CREATED = {"data": {"edit_history_tweet_ids": ["{id}"], "id": "{id}", "text": "{text}"}}
DUPLICATE = {"detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank",
             "title": "Forbidden", "status": 403}
CLIENT_FORBIDDEN = {
    "client_id": "27580393",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a "
              "Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden", "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden"}
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
UNAVAILABLE = {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503}
INTERNAL = {"title": "Internal Server Error", "detail": "Internal Server Error", "type": "about:blank", "status": 500}
BAD_REQUEST = {"errors": [{"parameters": {"text": ["..."]}, "message": "Your Tweet text is too long."}],
               "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
               "type": "https://api.twitter.com/2/problems/invalid-request"}
ME = {"data": {"id": USER_ID, "name": "Reelworks Plot Bot", "username": USERNAME}}
# POST /2/media/upload (one-shot): {"data": {...}}
MEDIA = {"id": "", "media_key": "", "size": 0, "expires_after_secs": 86400,
         "image": {"image_type": "image/png", "w": 64, "h": 64}}
MEDIA_BAD_REQUEST = {"errors": [{"message": "media type unrecognized."}], "title": "Invalid Request",
                     "detail": "One or more parameters to your request was invalid.",
                     "type": "https://api.twitter.com/2/problems/invalid-request"}
MEDIA_TOO_LARGE = {"errors": [{"message": "File size exceeds 5242880 bytes."}], "title": "Invalid Request",
                   "detail": "One or more parameters to your request was invalid.",
                   "type": "https://api.twitter.com/2/problems/invalid-request"}
METADATA_BAD_REQUEST = {"errors": [{"parameters": {"metadata.alt_text.text": ["..."]},
                                    "message": "The `alt_text.text` field must be at most 1000 characters."}],
                        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                        "type": "https://api.twitter.com/2/problems/invalid-request"}

JSON = {"content-type": "application/json; charset=utf-8"}


class FakeX:
    """One X account. `script(endpoint, *actions)` queues failures for the next calls:

    "503", "500", "400", "401", "403" (client forbidden), "429" or "429:SECONDS" (reset in that
    many seconds), "timeout", "connect", "posted+timeout" / "posted+503" (the tweet is created,
    the response is lost: the ambiguous case). Endpoints: create, me, timeline, upload, metadata.
    Like X, an upload over 5 MB is a 400, and alt text over 1000 characters or for a media id it
    never gave out is a 400; `read()["metadata"]` holds each media id's metadata.
    """

    def __init__(self, path: Path, credentials: dict[str, str], duplicate_check: bool = True):
        self.path = Path(path)
        self.credentials = credentials
        # "on_call"(endpoint): run as each request arrives; "after_create"(): after a tweet is stored
        self.hooks: dict[str, object] = {}
        self._write({"tweets": [], "next_id": FIRST_ID, "script": {}, "calls": {}, "media": [],
                     "now": time.time(), "duplicate_check": duplicate_check, "latency": 0.0})

    # ------------------------------------------------------------------ state

    def _write(self, state: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.path)

    @contextmanager
    def state(self):
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.path.read_text())
                yield state
                self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> dict:
        with self.state() as state:
            return json.loads(json.dumps(state))

    @property
    def tweets(self) -> list[dict]:
        return self.read()["tweets"]

    def calls(self, endpoint: str) -> int:
        return self.read()["calls"].get(endpoint, 0)

    def script(self, endpoint: str, *actions: str) -> None:
        with self.state() as state:
            state["script"].setdefault(endpoint, []).extend(actions)

    def set_time(self, now: float) -> None:
        with self.state() as state:
            state["now"] = now

    def post_directly(self, text: str) -> str:
        """A tweet made outside the publisher (e.g. by a run that died before recording it)."""
        with self.state() as state:
            return self._store(state, text, None, [])

    # ------------------------------------------------------------------ HTTP

    def register(self, rsps: responses.RequestsMock) -> None:
        rsps.add_callback(responses.POST, f"{API}/2/tweets", callback=self._create)
        rsps.add_callback(responses.GET, f"{API}/2/users/me", callback=self._me)
        rsps.add_callback(responses.GET, re.compile(rf"{re.escape(API)}/2/users/\d+/tweets.*"),
                          callback=self._timeline)
        rsps.add_callback(responses.POST, UPLOAD, callback=self._upload)
        rsps.add_callback(responses.POST, METADATA, callback=self._metadata)

    def _authorized(self, request) -> bool:
        header = request.headers.get("Authorization", "")
        if isinstance(header, bytes):
            header = header.decode()
        return (header.startswith("OAuth ") and "oauth_signature=" in header
                and f'oauth_consumer_key="{self.credentials["X_API_KEY"]}"' in header
                and f'oauth_token="{self.credentials["X_ACCESS_TOKEN"]}"' in header)

    def _begin(self, endpoint: str, request):
        """Count the call; the scripted action for it (or None) and an early response."""
        if self.hooks.get("on_call"):
            self.hooks["on_call"](endpoint)
        with self.state() as state:
            state["calls"][endpoint] = state["calls"].get(endpoint, 0) + 1
            queue = state["script"].get(endpoint, [])
            action = queue.pop(0) if queue else None
            now, latency = state["now"], state["latency"]
        if latency:
            time.sleep(latency)  # room for a test to kill the publisher mid-request
        if not self._authorized(request):
            return action, (401, JSON, json.dumps(UNAUTHORIZED))
        if action in (None, "posted+timeout", "posted+503"):
            return action, None
        if action == "timeout":
            raise requests.exceptions.ReadTimeout(f"HTTPSConnectionPool(host='api.twitter.com', port=443): "
                                                  "Read timed out. (read timeout=30)")
        if action == "connect":
            raise requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")
        if action.startswith("429"):
            wait = int(action.split(":")[1]) if ":" in action else 900
            headers = {**JSON, "x-rate-limit-limit": "17", "x-rate-limit-remaining": "0",
                       "x-rate-limit-reset": str(int(now + wait))}
            return action, (429, headers, json.dumps(TOO_MANY))
        body = {"503": UNAVAILABLE, "500": INTERNAL, "400": BAD_REQUEST, "401": UNAUTHORIZED,
                "403": CLIENT_FORBIDDEN}[action]
        return action, (int(action), JSON, json.dumps(body))

    def _store(self, state: dict, text: str, reply_to: str | None, media_ids: list[str]) -> str:
        tweet_id = str(state["next_id"])
        state["next_id"] += 1
        state["tweets"].append({"id": tweet_id, "text": text, "reply_to": reply_to, "media_ids": media_ids,
                                "created_at": state["now"]})
        return tweet_id

    def _create(self, request):
        action, early = self._begin("create", request)
        if early:
            return early
        body = json.loads(request.body)
        text = body["text"]
        with self.state() as state:
            if state["duplicate_check"] and any(t["text"] == text for t in state["tweets"]):
                return 403, JSON, json.dumps(DUPLICATE)
            tweet_id = self._store(state, text, (body.get("reply") or {}).get("in_reply_to_tweet_id"),
                                   (body.get("media") or {}).get("media_ids", []))
        hook = self.hooks.get("after_create")
        if hook:
            hook()  # crash injection: the tweet exists, the response never arrives
        if action == "posted+timeout":
            raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)")
        if action == "posted+503":
            return 503, JSON, json.dumps(UNAVAILABLE)
        created = {"data": {"edit_history_tweet_ids": [tweet_id], "id": tweet_id, "text": text}}
        return 201, JSON, json.dumps(created)

    def _me(self, request):
        _, early = self._begin("me", request)
        return early or (200, JSON, json.dumps(ME))

    def _timeline(self, request):
        _, early = self._begin("timeline", request)
        if early:
            return early
        query = parse_qs(urlparse(request.url).query)
        start = query.get("start_time", [None])[0]
        since = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() if start else 0
        limit = int(query.get("max_results", ["10"])[0])
        offset = int(query.get("pagination_token", ["0"])[0])
        with self.state() as state:
            # Newest first, text HTML-escaped, as X returns it.
            tweets = [t for t in reversed(state["tweets"]) if t["created_at"] >= since]
        page = tweets[offset:offset + limit]
        if not page:
            return 200, JSON, json.dumps({"meta": {"result_count": 0}})
        data = [{"id": t["id"], "text": html.escape(t["text"], quote=False), "edit_history_tweet_ids": [t["id"]],
                 "created_at": datetime.fromtimestamp(t["created_at"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                for t in page]
        meta = {"result_count": len(page), "newest_id": page[0]["id"], "oldest_id": page[-1]["id"]}
        if offset + limit < len(tweets):
            meta["next_token"] = str(offset + limit)
        return 200, JSON, json.dumps({"data": data, "meta": meta})

    def _upload(self, request):
        action, early = self._begin("upload", request)
        if early:
            if action == "400":  # X's answer to a file it cannot take
                return 400, JSON, json.dumps(MEDIA_BAD_REQUEST)
            return early
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        content_type = request.headers.get("Content-Type", "")
        content_type = content_type.decode() if isinstance(content_type, bytes) else content_type
        # A one-shot upload is multipart/form-data with the file in `media` and its category.
        if (not content_type.startswith("multipart/form-data") or b'name="media"' not in body
                or b'name="media_category"' not in body):
            return 400, JSON, json.dumps(MEDIA_BAD_REQUEST)
        category = body.split(b'name="media_category"', 1)[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
        headers, media = _form_part(body, content_type, "media")
        if len(media) > MAX_IMAGE_BYTES:
            return 400, JSON, json.dumps(MEDIA_TOO_LARGE)
        media_type = re.search(rb"content-type:\s*([^\r\n;]+)", headers, re.IGNORECASE)
        with self.state() as state:
            media_id = str(1880028106020515840 + len(state["media"]))
            state["media"].append(media_id)
            state.setdefault("uploads", []).append({"id": media_id, "category": category.decode(),
                                                    "bytes": len(body), "media_bytes": len(media),
                                                    "content_type": media_type.group(1).decode() if media_type
                                                    else None, "magic": media[:3].hex()})
        data = {**MEDIA, "id": media_id, "media_key": f"3_{media_id}", "size": len(body)}
        return 200, JSON, json.dumps({"data": data})

    def _metadata(self, request):
        action, early = self._begin("metadata", request)
        if early:
            return early
        body = json.loads(request.body)
        media_id, alt = str(body.get("id", "")), ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        with self.state() as state:
            if media_id not in state["media"] or not isinstance(alt, str) or not 0 < len(alt) <= MAX_ALT_TEXT:
                return 400, JSON, json.dumps(METADATA_BAD_REQUEST)
            state.setdefault("metadata", {})[media_id] = body["metadata"]
        return 200, JSON, json.dumps({"data": {"associated_metadata": body["metadata"], "id": media_id}})


def _form_part(body: bytes, content_type: str, name: str) -> tuple[bytes, bytes]:
    """(headers, content) of the multipart/form-data part called `name`."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    for part in body.split(b"--" + boundary):
        headers, _, content = part.partition(b"\r\n\r\n")
        if f'name="{name}"'.encode() in headers:
            return headers, content.removesuffix(b"\r\n")
    return b"", b""


# ------------------------------------------------------------ test data shared by the tweeter tests

# Distinctive values, so a test can prove none of them ever reaches a log or an error.
CREDENTIALS = {"X_API_KEY": "ck-7Hq2SecretConsumerKey", "X_API_SECRET": "cs-Zp9SecretConsumerSecret",
               "X_ACCESS_TOKEN": "2244994945-Tk4SecretAccessToken", "X_ACCESS_TOKEN_SECRET": "ts-Wm3SecretTokenSecret"}

PLOTS = [
    ("The Last Lighthouse", "A lonely robot keeps a lighthouse burning for ships that stopped coming a century ago.",
     ["Sci-Fi", "Drama"], ["robot"]),
    ("Heist at Dawn", "Five retired thieves & one nervous accountant plan to rob the bank that ruined their town.",
     ["Crime", "Comedy"], ["heist", "small town"]),
    ("Winter Orchard", "Two estranged sisters return to their late father's orchard and find a letter he never sent.",
     ["Drama"], ["family"]),
    ("Signal Lost", "An astronaut stranded on Europa hears her own voice on the radio, calling from the future.",
     ["Sci-Fi", "Thriller"], []),
    ("The Cartographer", "A mapmaker discovers that every town she draws appears the next morning. " * 4,
     ["Fantasy"], ["maps"]),  # too long for one tweet: a two-part thread
]


def make_items(n: int | None = None) -> list[QueueItem]:
    return [QueueItem(title, plot, genres=genres, keywords=keywords)
            for title, plot, genres, keywords in PLOTS[:n]]
