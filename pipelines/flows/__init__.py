"""Prefect flows: one flow per category, a parent flow that fans the categories out, the benchmark.

The tasks call the same stage functions as ``dvc.yaml`` (``pipelines.stages``); the DAG is not
rebuilt here. I/O tasks (data, registry) retry; training is never cached.
"""
