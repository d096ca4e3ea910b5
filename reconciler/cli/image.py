"""`odooops image build`: the Odoo image for hosts that reach no registry, built from Odoo's source."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from reconciler.cli.common import handle_errors
from reconciler.executors.images import build_odoo_image
from reconciler.progress import reporting


@click.group("image")
def image_group() -> None:
    """Runtime images: build odoo:<version> from source (air-gapped hosts)."""


@image_group.command("build")
@click.option("--odoo-source", "source", required=True, type=click.Path(path_type=Path),
              help="Odoo source archive (odoo-19.0-ce.tar.xz) or unpacked source directory.")
@click.option("--tag", default=None, metavar="NAME:TAG",
              help="Image tag [default: odoo:<series of the source>, e.g. odoo:19.0].")
@click.option("--docker-host", envvar="DOCKER_HOST", default=None, help="Docker engine [env DOCKER_HOST].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors
def image_build(source: Path, tag: str | None, docker_host: str | None, as_json: bool) -> None:
    """Build an image with the official odoo image's contract from SOURCE and Debian packages.

    The root filesystem is made with debootstrap from the Debian mirror apt uses (cached by the
    package list in /var/cache/odooops); an image already built from the same source and build
    files is reused at once. An existing image of that tag not built by OdooOps is never replaced.
    """
    started = time.monotonic()

    def show(line: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {line}", err=True)

    with reporting(show):
        result = build_odoo_image(source, tag, docker_host=docker_host)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        how = "up to date (cached)" if result.cached else "built"
        click.echo(f"{result.tag}: {how} in {result.duration_s:.1f} s, Odoo {result.odoo_version}, "
                   f"{result.image_id[7:19]}, digest {result.digest[:12]}")
