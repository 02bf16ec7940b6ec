"""The dry-run account: tweets land in an outbox folder instead of on X.

`publish --dry-run` runs the very same claim/post/confirm cycle as a real publish, against
this account and a ledger of its own (`<outbox>/ledger`), so repeated dry runs walk through
the queue while the real ledger stays untouched and no credentials are needed:

    <outbox>/tweets/<plot id>-<n>.json   {"text": ..., "reply_to": ..., "image": [URI], "image_source": [URI],
                                          "alt_text": [text], ...}
    <outbox>/tweets/<plot id>-<n>.png    the image the tweet carries: what X would get (.jpg when a
                                         poster over 5 MB was re-encoded)
    <outbox>/ledger/...                  the dry-run ledger

Each tweet object is created once, so posting the same part twice is a `Duplicate`, just
like X's duplicate-content rejection.
"""
from __future__ import annotations

import json
import time
from pathlib import PurePosixPath

from reelworks import storage
from reelworks.tweeter.x_account import Duplicate, same_text


class OutboxAccount:
    def __init__(self, uri: str, clock=time.time):
        self.uri = uri.rstrip("/")
        self.clock = clock
        self._media: dict[str, tuple[str, str, bytes, str | None]] = {}  # media id -> (source URI, name, bytes, alt)

    @property
    def tweets_uri(self) -> str:
        return f"{self.uri}/tweets"

    @property
    def ledger_uri(self) -> str:
        return f"{self.uri}/ledger"

    def verify(self) -> str:
        return f"outbox {self.uri}"

    def post(self, text: str, *, reply_to: str | None = None, media_ids: list[str] | None = None,
             plot_id: str = "", part: int = 0) -> str:
        name = f"{plot_id or 'tweet'}-{part}"
        tweet_id = f"dry-run-{name}"
        record_uri = storage.join(self.tweets_uri, f"{name}.json")
        if storage.exists(record_uri):
            raise Duplicate(f"outbox already holds {name}")
        # The image goes in beside the record, before it: a record never names a missing image.
        images, sources, alts = [], [], []
        for k, media_id in enumerate(media_ids or []):
            source, file_name, data, alt = self._media[media_id]
            suffix = PurePosixPath(file_name).suffix.lower() or ".bin"
            image_uri = storage.join(self.tweets_uri, f"{name}{'' if k == 0 else f'-{k}'}{suffix}")
            storage.write_bytes(image_uri, data)
            images.append(image_uri)
            sources.append(source)
            alts.append(alt)
        record = {"id": tweet_id, "text": text, "reply_to": reply_to, "image": images or None,
                  "image_source": sources or None, "alt_text": alts or None,
                  "plot_id": plot_id, "part": part, "weighted_length": None, "at": self.clock()}
        from reelworks.tweeter.text import weighted_length

        record["weighted_length"] = weighted_length(text)
        if not storage.create_if_absent(record_uri,
                                        json.dumps(record, ensure_ascii=False, indent=1) + "\n"):
            raise Duplicate(f"outbox already holds {name}")
        return tweet_id

    def find_posted(self, texts: list[str], since: float) -> dict[str, str]:
        found: dict[str, str] = {}
        for key in storage.list_keys(self.tweets_uri):
            if not key.endswith(".json"):
                continue
            record = json.loads(storage.read_text(storage.join(self.tweets_uri, key)))
            for text in texts:
                if text not in found and same_text(record.get("text", ""), text):
                    found[text] = record["id"]
        return found

    def upload_image(self, data: bytes, source: str, *, name: str | None = None,
                     alt_text: str | None = None) -> str:
        media_id = f"dry-run-media-{len(self._media)}"
        self._media[media_id] = (source, name or PurePosixPath(source).name, data, alt_text)
        return media_id
