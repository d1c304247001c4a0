"""The ``glcf`` command line (console script). Heavy imports happen inside each command."""

from __future__ import annotations

import typer

from pipelines.commands import (
    benchmark,
    deploy,
    evaluate,
    export,
    flow,
    generate,
    loco_eval,
    model_info,
    predict,
    remote,
    report,
    review,
    serve,
    stage,
)

app = typer.Typer(
    name="glcf",
    help="GLCF logical anomaly detection: model, data, evaluation and the MLOps pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("model-info")(model_info.model_info)
app.add_typer(remote.app, name="remote")
app.command("loco-eval")(loco_eval.loco_eval)
app.command("evaluate")(evaluate.evaluate)
app.command("stage")(stage.stage)
app.command("flow")(flow.flow)
app.command("report")(report.report)
app.add_typer(review.app, name="review")
app.command("generate")(generate.generate)
app.command("serve")(serve.serve)
app.command("predict")(predict.predict)
app.command("export")(export.export)
app.command("benchmark-formats")(export.benchmark_formats)
app.command("benchmark")(benchmark.benchmark)
app.command("deploy")(deploy.deploy)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
