"""Launchers for real Prometheus and Alertmanager processes on loopback.

Both listen on 127.0.0.1 only. Alertmanager's cluster listener is disabled unless a test asks
for gossip (it would otherwise bind 0.0.0.0:9094).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stack import binaries
from stack.process import Service, free_port, http_ready


def prometheus(
    config_file: Path,
    workdir: Path,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    name: str = "prometheus",
) -> Service:
    """A Prometheus Service (not yet started) with its TSDB under `workdir`; `.url` is set."""
    port = port or free_port()
    argv = [
        binaries.require("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--web.enable-admin-api",
        *extra_args,
    ]
    url = f"http://127.0.0.1:{port}"
    service = Service(name, argv, workdir / f"{name}.log", ready=http_ready(f"{url}/-/ready"))
    service.url = url  # type: ignore[attr-defined]
    service.port = port  # type: ignore[attr-defined]
    return service


def alertmanager(
    config_file: Path,
    workdir: Path,
    port: int | None = None,
    cluster_port: int | None = None,
    peers: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    name: str = "alertmanager",
) -> Service:
    """An Alertmanager Service (not yet started); gossip only when `cluster_port` is given."""
    port = port or free_port()
    cluster = (
        [
            f"--cluster.listen-address=127.0.0.1:{cluster_port}",
            f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
        ]
        + [f"--cluster.peer={peer}" for peer in peers]
        if cluster_port
        else ["--cluster.listen-address="]
    )
    url = f"http://127.0.0.1:{port}"
    argv = [
        binaries.require("alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={workdir / (name + '-data')}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={url}",
        *cluster,
        *extra_args,
    ]
    service = Service(name, argv, workdir / f"{name}.log", ready=http_ready(f"{url}/-/ready"))
    service.url = url  # type: ignore[attr-defined]
    service.port = port  # type: ignore[attr-defined]
    return service
