"""``glcf remote configure``: a DVC remote on S3 (or an S3-compatible store) set by a command, not by hand.

Writes through DVC's own configuration API (the same code path as ``dvc remote add`` / ``dvc remote modify``):
``url``, ``endpointurl`` and ``region`` go to the committed ``.dvc/config``; credentials, only when asked with
``--local-credentials``, go to the git-ignored ``.dvc/config.local``, taken from the environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` through :mod:`pipelines.settings`). Without that flag DVC reads the
same variables at push/pull time, which is the recommended setup for CI and workers (docs/operations.md, Remotes).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

logger = logging.getLogger(__name__)

app = typer.Typer(help="Manage DVC remotes (S3 and S3-compatible stores).", no_args_is_help=True)

_CREDENTIAL_KEYS = ("access_key_id", "secret_access_key", "session_token")


class RemoteConfigError(ValueError):
    """The remote cannot be configured as asked."""


def _check_url(url: str, endpoint_url: str | None) -> None:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        msg = f"--url must be s3://bucket[/prefix], got {url!r}"
        raise RemoteConfigError(msg)
    if endpoint_url is not None:
        ep = urlsplit(endpoint_url)
        if ep.scheme not in {"http", "https"} or not ep.netloc:
            msg = f"--endpoint-url must be an http(s) URL, got {endpoint_url!r}"
            raise RemoteConfigError(msg)
        if ep.password:
            msg = "--endpoint-url must not contain credentials (they would be committed in .dvc/config)"
            raise RemoteConfigError(msg)


def configure_remote(
    repo_root: Path,
    name: str,
    url: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    default: bool = False,
    local_credentials: bool = False,
) -> dict[str, str]:
    """Add or update the DVC remote ``name`` (idempotent) and return its committed settings.

    Args:
        repo_root: a directory inside the DVC repository.
        name: remote name.
        url: ``s3://bucket/prefix``.
        endpoint_url: S3-compatible endpoint (``endpointurl``); None for AWS.
        region: S3 region.
        default: make it the default remote (``core.remote``).
        local_credentials: copy AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment into
            ``.dvc/config.local`` (never into ``.dvc/config``).

    Raises:
        RemoteConfigError: bad URL, not a DVC repository, credentials in the committed config, or
            ``local_credentials`` without both variables set.
    """
    _check_url(url, endpoint_url)
    config = _dvc_config(repo_root)
    _refuse_committed_credentials(config, name)
    secrets = _environment_credentials() if local_credentials else {}
    with config.edit("repo") as conf:
        section = conf["remote"].setdefault(name, {})
        if section.get("url") != url:
            section.clear()  # a new URL starts a new remote, like `dvc remote add -f`
        section["url"] = url
        for key, value in (("endpointurl", endpoint_url), ("region", region)):
            if value is None:
                section.pop(key, None)
            else:
                section[key] = value
        if default:
            conf["core"]["remote"] = name
        result = {k: str(v) for k, v in section.items()}
    if secrets:
        with config.edit("local") as conf:
            conf["remote"].setdefault(name, {}).update(secrets)
        Path(config.files["local"]).chmod(0o600)  # readable by its owner only
    logger.info("DVC remote %s -> %s (endpoint %s)", name, url, endpoint_url or "AWS")
    return result


def _dvc_config(repo_root: Path) -> Any:
    """DVC's configuration (``dvc.config.Config``) of the repository that holds ``repo_root``."""
    from dvc.config import Config
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        dvc_dir = Repo.find_dvc_dir(str(repo_root))
    except NotDvcRepoError:
        msg = f"{repo_root} is not inside a DVC repository (run `dvc init` first)"
        raise RemoteConfigError(msg) from None
    return Config(dvc_dir=dvc_dir)


def _refuse_committed_credentials(config: Any, name: str) -> None:
    """Refuse to touch a remote whose committed ``.dvc/config`` section holds credentials."""
    committed = config.load_one("repo").get("remote", {}).get(name, {})
    leaked = [k for k in _CREDENTIAL_KEYS if k in committed]
    if leaked:
        msg = (
            f"remote {name!r} has {', '.join(leaked)} in the committed .dvc/config: remove them "
            f"(`dvc remote modify {name} --unset <option>`), rotate the key, and use --local-credentials"
        )
        raise RemoteConfigError(msg)


def _environment_credentials() -> dict[str, str]:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment, as DVC remote options."""
    from pipelines.settings import get_settings

    settings = get_settings()
    if settings.aws_access_key_id is None or settings.aws_secret_access_key is None:
        msg = "--local-credentials needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        raise RemoteConfigError(msg)
    return {
        "access_key_id": settings.aws_access_key_id.get_secret_value(),
        "secret_access_key": settings.aws_secret_access_key.get_secret_value(),
    }


def configure(
    name: Annotated[str, typer.Option(help="Remote name.")],
    url: Annotated[str, typer.Option(help="s3://bucket/prefix")],
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint (http://host:port).")] = None,
    region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default remote.")] = False,
    local_credentials: Annotated[
        bool,
        typer.Option(
            "--local-credentials",
            help="Copy AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment into .dvc/config.local "
            "(git-ignored). Without it DVC reads them from the environment at push/pull time.",
        ),
    ] = False,
    repo: Annotated[Path, typer.Option(help="A directory inside the DVC repository.")] = Path(),
) -> None:
    """Add or update a DVC remote on S3; credentials only ever go to .dvc/config.local."""
    try:
        section = configure_remote(repo, name, url, endpoint_url, region, default, local_credentials)
    except RemoteConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    where = "written to .dvc/config.local" if local_credentials else "read from the environment at push/pull time"
    via = f" via {section['endpointurl']}" if "endpointurl" in section else ""
    typer.echo(f"remote {name}: {section['url']}{via}")
    typer.echo(f"default remote: {name}" if default else "default remote: unchanged")
    typer.echo(f"credentials: {where}")


app.command("configure")(configure)
