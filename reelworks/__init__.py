"""reelworks: machine learning on movies, run as Kubernetes batch jobs.

One package holds the logic; Kubeflow components (`reelworks.components`), pipelines
(`reelworks.pipelines`) and the `reelworks` CLI are thin shells over it.
"""
__version__ = "0.1.0"
