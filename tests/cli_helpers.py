"""Running the CLI in-process from tests (imported by name: tests/ is on sys.path)."""
from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout


def run_cli(*args: str) -> tuple[int, str]:
    """Run `reelworks ARGS` in-process; (exit code, stdout + stderr)."""
    from reelworks.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue() + err.getvalue()
