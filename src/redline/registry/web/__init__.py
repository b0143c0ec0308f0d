"""The registry's web pages: ``create_app`` (the FastAPI app), ``serve`` (run it) and
``serve_command`` (what ``redline registry serve`` calls).

FastAPI, Jinja2 and uvicorn are the ``registry`` extra; they are imported only when the
app is built or served, so ``redline registry`` commands that do not serve never load them.
"""
from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve", "serve_command"]


def create_app(registry: Any, *, write_token: Any, read_token: str | None = None) -> Any:
    from .app import create_app as build

    return build(registry, write_token=write_token, read_token=read_token)


def serve(db_url: str | None, listen: str = "127.0.0.1:8080", **options: Any) -> None:
    from .server import serve as run

    run(db_url, listen, **options)


def serve_command(args: Any) -> int:
    from .server import serve_command as run

    return run(args)
