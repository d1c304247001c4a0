"""The ``glcf`` command line (console script). Heavy imports happen inside each command."""

from __future__ import annotations

import typer

from pipelines.commands import loco_eval, remote

app = typer.Typer(
    name="glcf",
    help="GLCF logical anomaly detection: model, data, evaluation and the MLOps pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.add_typer(remote.app, name="remote")
app.command("loco-eval")(loco_eval.loco_eval)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
