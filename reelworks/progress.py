"""Logging and progress bars that read well in a terminal and in pod logs."""
from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

from reelworks import redaction

T = TypeVar("T")


def setup_logging(level: str | None = None) -> None:
    """Log lines to stderr, with secrets redacted from every record, warning and uncaught
    traceback (`redaction.install`), whatever handlers are added later."""
    redaction.install()
    level = level or os.environ.get("REELWORKS_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # Chatty third-party loggers hide the job's own lines.
    for name in ("botocore", "boto3", "s3transfer", "kfp", "absl", "h5py", "PIL", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # urllib3 warns on every retry; the job reports the final outcome itself. (The child
    # logger, because kfp's API client resets the "urllib3" logger's level.)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def track(iterable: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """A progress bar for long loops; in pod logs (no TTY) it prints a line every 30 s."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, desc=description, total=total, unit=unit, dynamic_ncols=True,
                mininterval=0.5 if interactive else 30, disable=os.environ.get("REELWORKS_PROGRESS") == "0")
