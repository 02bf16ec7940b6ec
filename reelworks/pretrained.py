"""Where pretrained models come from: a Hub id, a local directory, or an `s3://` prefix.

`resolve(ref)` turns any of these into something `from_pretrained` accepts (S3 prefixes
are synced into the local cache first) and says clearly when a model cannot be found.
Weights are only ever loaded from safetensors (`use_safetensors=True`), never a pickle.
"""
from __future__ import annotations

import os
from pathlib import Path

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError


def resolve(ref: str) -> str:
    """A local directory or a Hub id for `from_pretrained`; raises if neither exists."""
    if storage.is_s3(ref) or ref.startswith("file://"):
        try:
            return str(storage.cached(ref))
        except NotFoundError:
            raise NotFoundError(f"no saved model at {ref}") from None
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith((".", "/", "~")):
        if not path.is_dir():
            raise NotFoundError(f"no saved model at {ref}: expected a directory from save_pretrained")
        return str(path)
    if ref.count("/") > 1 or not ref.strip():
        raise ReelworksError(f"{ref!r} is neither a local directory, an s3:// prefix nor a Hub id")
    return ref  # a Hub id: from_pretrained downloads it (or finds it in the HF cache)


# A file holding the Hugging Face token (a mounted Kubernetes Secret), for gated models such as
# SVD or SD 3; HF_TOKEN, the Hub library's own variable, works as well.
TOKEN_FILE_ENV = "REELWORKS_HF_TOKEN_FILE"


def hub_token() -> str | None:
    """The Hugging Face token for gated models: the file named by REELWORKS_HF_TOKEN_FILE, else
    HF_TOKEN, else None. Registered with `redaction`, so no log line or error ever shows it."""
    from reelworks import redaction

    path = os.environ.get(TOKEN_FILE_ENV, "").strip()
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise ReelworksError(f"{TOKEN_FILE_ENV}={path}: cannot read the token file ({exc.strerror})") from None
        if not token:
            raise ReelworksError(f"{TOKEN_FILE_ENV}={path}: the token file is empty")
    else:
        token = os.environ.get("HF_TOKEN", "").strip() or None
    if token:
        redaction.add_secrets([token])
    return token


def hub_kwargs() -> dict:
    """What every `from_pretrained` of a Hub id takes besides the id: the token, when there is one."""
    token = hub_token()
    return {"token": token} if token else {}


def hub_error(ref: str, exc: Exception) -> ReelworksError:
    """The one line to show when `from_pretrained(ref)` failed."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = " (HF_HUB_OFFLINE=1: only cached models load)" if offline else ""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    from reelworks.redaction import redact

    return NotFoundError(redact(f"cannot load model {ref!r}{hint}: {first}"))


def save(local_dir: str | Path, uri: str) -> None:
    """Publish a `save_pretrained` directory to a local path or s3:// prefix."""
    storage.sync_up(local_dir, uri)
