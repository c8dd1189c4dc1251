"""Thin Tornado handlers: parse, call into the core, answer JSON."""

from __future__ import annotations

import asyncio
import json

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from .. import __version__
from ..llm import parse_model_string
from ..sandbox import SandboxUnavailable, choose_kernel


class StatusHandler(ExtensionHandlerMixin, APIHandler):
    """What the panel needs to know before a run: the model and whether code is sandboxed."""

    @tornado.web.authenticated
    async def get(self) -> None:
        app = self.extensionapp
        backend, name = parse_model_string(app.model)
        try:
            specs = await ensure_async(self.kernel_spec_manager.get_all_specs())
            choice = await asyncio.to_thread(choose_kernel, None, app.allow_unsandboxed, specs)
            kernel = {"name": choice.name, "sandboxed": choice.sandboxed, "problem": choice.problem}
        except SandboxUnavailable as error:
            kernel = {"name": None, "sandboxed": False, "problem": str(error)}
        self.finish(
            json.dumps(
                {
                    "version": __version__,
                    "model": {"backend": backend, "name": name, "base_url": app.base_url or None},
                    "execution": app.execution,
                    "max_steps": app.max_steps,
                    "kernel": kernel,
                }
            )
        )
