"""reelworks: machine learning on movies, run as Kubernetes batch jobs.

One package holds the logic; Kubeflow components (`reelworks.components`), pipelines
(`reelworks.pipelines`) and the `reelworks` CLI are thin shells over it.
"""
from reelworks import redaction as _redaction

__version__ = "0.1.0"

# Every process that imports reelworks keeps secrets out of what it prints. A Kubeflow step
# runs only its component's body (which imports from here) and never the CLI's logging set-up,
# so the place that reaches every step, CronJob and CLI run alike is the package itself.
_redaction.install()
