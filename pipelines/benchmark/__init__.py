"""Benchmarks: the SAM layouts and the ablations of the paper (Sec. IV-C/D, Tables V-VII) per category.

Each (variant, category) pair trains, calibrates and evaluates with the pipeline's own stage
functions, as an MLflow run nested under one parent run (tag ``mlflow.parentRunId``), with its
outputs under ``<paths.models>/benchmark/<variant>`` and ``<paths.reports>/benchmark/<variant>``;
data and manifests are the pipeline's. Nothing is registered. The comparison table (image AUROC
total/logical/structural, pixel AUROC, sPRO at FPR 0.05) is written as CSV, markdown and a PNG bar
chart to ``<paths.reports>/benchmark/`` and logged to the parent run.

A variant is a set of ``params.yaml`` overrides on top of the given parameters. Variants whose
training settings are equal (``correspondence`` only changes how the map is scored) share one
trained checkpoint within a benchmark.

``glcf benchmark`` and the Prefect flow ``benchmark_flow`` both call
:func:`pipelines.benchmark.run.run_benchmark`; :mod:`~pipelines.benchmark.plan` holds the variants,
jobs and results, :mod:`~pipelines.benchmark.table` the table.
"""
