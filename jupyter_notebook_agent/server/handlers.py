"""Thin Tornado handlers: parse, call into the core, answer JSON."""

from __future__ import annotations

import json

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from .. import __version__
from ..llm import parse_model_string
from ..sandbox import SandboxUnavailable, choose_kernel


class StatusHandler(ExtensionHandlerMixin, APIHandler):
    """What the panel needs to know before a run: the model and whether code is sandboxed."""

    @tornado.web.authenticated
    def get(self) -> None:
        app = self.extensionapp
        backend, name = parse_model_string(app.model)
        try:
            kernel, sandboxed = choose_kernel(None, app.allow_unsandboxed)
            problem = None
        except SandboxUnavailable as error:
            kernel, sandboxed, problem = None, False, str(error)
        self.finish(
            json.dumps(
                {
                    "version": __version__,
                    "model": {"backend": backend, "name": name, "base_url": app.base_url or None},
                    "execution": app.execution,
                    "max_steps": app.max_steps,
                    "kernel": {"name": kernel, "sandboxed": sandboxed, "problem": problem},
                }
            )
        )
