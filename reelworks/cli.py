"""The `reelworks` command line: pipelines (list, run, compile, submit) and one command per
step (`reelworks plots prep ...`), the same functions the Kubeflow components call.

Errors the user can fix print one `error: ...` line on stderr and exit non-zero.
"""
from __future__ import annotations

import importlib
import sys
from typing import List, Optional

import typer

from reelworks import redaction
from reelworks.errors import ReelworksError

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
pipelines_app = typer.Typer(help="Pipelines this install knows.", no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")

# One sub-command group per workflow, each defined in reelworks/<workflow>/cli.py.
WORKFLOWS = ("plots", "tweeter", "films", "posters", "musicvideo", "t2v")
for _workflow in WORKFLOWS:
    _module = importlib.import_module(f"reelworks.{_workflow}.cli")
    app.add_typer(_module.app, name=_workflow)

ParamOption = typer.Option(None, "--param", "-p", help="Pipeline parameter as key=value (repeatable).")


@pipelines_app.command("list")
def pipelines_list() -> None:
    """List the pipelines with their parameters."""
    from reelworks import kubeflow

    for name, entry in kubeflow.pipelines().items():
        typer.echo(f"{name:<12} {entry.description}")
        typer.echo(f"{'':<12} parameters: {', '.join(entry.input_types())}")


@app.command()
def run(pipeline: str = typer.Argument(..., help="Pipeline name (see `reelworks pipelines list`)."),
        param: Optional[List[str]] = ParamOption,
        local: bool = typer.Option(True, "--local/--no-local",
                                   help="Run in-process with kfp.local (the default; no cluster, no Docker)."),
        pipeline_root: Optional[str] = typer.Option(None, help="Where artifacts go: a local folder or s3:// URI."),
        host: Optional[str] = typer.Option(None, help="With --no-local: the Kubeflow Pipelines endpoint; waits for the run."),
        verbose: bool = typer.Option(False, "--verbose", "-v",
                                     help="Local runs: show everything the steps print, not only a line per step "
                                          "(their logs are kept in the run's folder either way).")) -> None:
    """Run a whole pipeline, locally by default: a line per step, then what it made and the run's index.html."""
    from reelworks import kubeflow

    entry = kubeflow.get_pipeline(pipeline)
    arguments = kubeflow.parse_params(entry, param or [])
    if local:
        kubeflow.run_local(pipeline, arguments, pipeline_root, verbose=verbose)
        return
    if not host:
        raise ReelworksError("--no-local needs --host URL (the Kubeflow Pipelines endpoint)")
    run_id = kubeflow.submit(pipeline, host, arguments, pipeline_root=pipeline_root, wait=True)
    typer.echo(f"run {run_id} finished")


@app.command("compile")
def compile_(pipeline: str = typer.Argument(..., help="Pipeline name."),
             output: str = typer.Option(..., "--output", "-o", help="Where to write the KFP IR YAML.")) -> None:
    """Compile a pipeline to KFP IR YAML (with its GPU, node and secret settings)."""
    from reelworks import kubeflow

    path = kubeflow.compile_pipeline(pipeline, output)
    typer.echo(f"wrote {path}")


@app.command()
def submit(pipeline: str = typer.Argument(..., help="Pipeline name."),
           host: str = typer.Option(..., help="Kubeflow Pipelines endpoint, e.g. http://ml-pipeline-ui.kubeflow"),
           experiment: Optional[str] = typer.Option(None, help="Experiment name (default: the pipeline's)."),
           param: Optional[List[str]] = ParamOption,
           pipeline_root: Optional[str] = typer.Option(None, help="s3:// root for artifacts (default: $REELWORKS_PIPELINE_ROOT or s3://$REELWORKS_S3_BUCKET/pipeline-root)."),
           namespace: Optional[str] = typer.Option(None, help="Kubeflow profile namespace."),
           wait: bool = typer.Option(False, help="Wait for the run to finish.")) -> None:
    """Submit a pipeline run to Kubeflow Pipelines."""
    from reelworks import kubeflow

    entry = kubeflow.get_pipeline(pipeline)
    arguments = kubeflow.parse_params(entry, param or [])
    run_id = kubeflow.submit(pipeline, host, arguments, experiment=experiment, pipeline_root=pipeline_root,
                             wait=wait, namespace=namespace)
    typer.echo(f"submitted run {run_id}")


metrics_app = typer.Typer(help="The Pushgateway's metric groups.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("prune")
def metrics_prune(older_than: str = typer.Option("7d", help="Delete pipeline-run groups last pushed before "
                                                           "this: 90s, 30m, 12h, 7d."),
                  gateway: Optional[str] = typer.Option(None, envvar="REELWORKS_PUSHGATEWAY_URL",
                                                        help="Pushgateway URL (default: $REELWORKS_PUSHGATEWAY_URL).")
                  ) -> None:
    """Delete the metric groups of old Kubeflow pipeline runs (per-job groups stay)."""
    from reelworks import metrics

    if not gateway:
        raise ReelworksError("no Pushgateway: pass --gateway URL or set REELWORKS_PUSHGATEWAY_URL")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value, unit = older_than[:-1], older_than[-1:]
    if unit not in units or not value.isdigit():
        raise ReelworksError(f"--older-than {older_than!r}: expected a number and s, m, h or d, e.g. 7d")
    deleted = metrics.prune(gateway, int(value) * units[unit])
    typer.echo(f"deleted {len(deleted)} metric group(s) older than {older_than}")


@app.callback()
def _setup(log_level: str = typer.Option("INFO", envvar="REELWORKS_LOG_LEVEL", help="Log level.")) -> None:
    from reelworks.progress import setup_logging

    setup_logging(log_level)


def _stop_on_sigterm() -> None:
    """Kubernetes stops pods with SIGTERM; as PID 1 in a container the default is to ignore
    it. Turn it into an orderly exit so `finally` blocks and metrics pushes still run."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> None:
    _stop_on_sigterm()
    try:
        # Standalone mode: click reports usage errors itself (exit 2) and turns Ctrl-C into
        # "Aborted!"; our own errors arrive here.
        app(args=argv)
    except ReelworksError as exc:
        print(redaction.redact(f"error: {exc}"), file=sys.stderr)
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
        # success: return normally, so in-process callers (tests, notebooks) carry on
