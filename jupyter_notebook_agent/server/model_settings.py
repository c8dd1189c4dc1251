"""The model set up in the JupyterLab panel: checked, kept in a file of the server's, and put in
effect over the configured one (c.NotebookAgent.model, base_url, api_key), across restarts,
until the panel resets it.

The file holds an API key: it is written with mode 0600, and the key goes into no message, log
line or answer of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import openai

from ..llm import backends, parse_model_string
from ..llm.base import ModelError
from ..llm.llama_cpp import is_bare_name
from ..llm.llama_cpp.hub import PREFIX as HUB_PREFIX
from ..llm.llama_cpp.hub import HubFile
from ..llm.openai_compat import PLACEHOLDER_KEY

#: Seconds that listing an endpoint's models may take: the panel waits for it.
LIST_TIMEOUT_S = 10.0
#: Longest model string, base URL or key taken: anything longer is a paste gone wrong.
MAX_CHARS = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Prefixes that look like a backend mistyped, or a local model without its backend.
_LIKE_BACKENDS = {"hf", "gguf", "local", "file", "llama", "llamacpp", "llama_cpp", "llama.cpp"}
FILE_VERSION = 1


class SetupError(ValueError):
    """What is wrong with a model setup, in one plain sentence for the person (a 400)."""


@dataclass(frozen=True)
class ModelSettings:
    """A model string and the endpoint it is reached at."""

    model: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)  # a repr may end up in a log

    def to_json(self) -> dict[str, Any]:
        """What the file holds."""
        return {
            "version": FILE_VERSION,
            "model": self.model,
            "base_url": self.base_url,
            "api_key": self.api_key,
        }

    @classmethod
    def from_json(cls, saved: Any) -> ModelSettings:
        """The settings a file holds; ValueError naming what is wrong (never a value)."""
        if not isinstance(saved, dict):
            raise ValueError("it is not a JSON object")
        values = {name: saved.get(name, "") for name in ("model", "base_url", "api_key")}
        for name, value in values.items():
            if not isinstance(value, str):
                raise ValueError(f"its {name!r} is not a string")
        if not values["model"]:
            raise ValueError("it names no model")
        return cls(**values)


def check_model(spec: str) -> None:
    """SetupError unless `spec` is a model string this server can try: a known backend, and
    for a local model a .gguf file that is here (or a hub reference)."""
    if len(spec) > MAX_CHARS or _CONTROL.search(spec):
        raise SetupError(f"the field 'model' must be one line of at most {MAX_CHARS} characters")
    prefix, colon, rest = spec.partition(":")
    backend, name = parse_model_string(spec)
    if colon and backend == "openai" and prefix.lower() in ("http", "https"):
        raise SetupError(
            "the model is a URL: give the endpoint's URL as the base URL, and the model's name "
            "as the model"
        )
    # `openai:NAME` is an endpoint's model by its own word, whatever the name looks like
    # (llama.cpp's server lists models by their file's path).
    endpoint = prefix == "openai" and bool(colon)
    if colon and backend == "openai" and not endpoint and _like_a_backend(prefix, rest):
        raise SetupError(
            f"{prefix!r} is not a backend: a model string is a hosted model's name, or "
            f"{', '.join(f'{each}:NAME' for each in backends())} (a model file on this server is "
            "llama-cpp:/path/to/file.gguf)"
        )
    if not name.strip():
        raise SetupError(f"the model {spec!r} names no model")
    if backend == "openai" and not endpoint and name.endswith(".gguf"):
        raise SetupError(f"{name} is a model file: give it as llama-cpp:{name} to run it here")
    if backend == "llama-cpp":
        if name.startswith(HUB_PREFIX):
            try:
                HubFile.parse(name)
            except ModelError as error:
                raise SetupError(str(error)) from None
            return
        _check_file(name, ".gguf", "model file")
    elif backend == "replay":
        _check_file(name, None, "recording")


def _like_a_backend(prefix: str, rest: str) -> bool:
    """`llamacpp:/m.gguf`, `hf:OWNER/REPO/FILE.gguf`: not an endpoint's model, whose names
    may hold a colon too (`qwen2.5-coder:7b`, `mistral:latest`), but no path after it."""
    if not re.fullmatch(r"[A-Za-z][\w.-]*", prefix):
        return False
    return prefix.lower() in _LIKE_BACKENDS or rest.startswith(("/", "~")) or ".gguf" in rest


def _check_file(name: str, suffix: str | None, kind: str) -> None:
    """SetupError unless `name` is the absolute path of an existing file here (a `suffix`
    file, where given)."""
    if suffix and is_bare_name(name):
        raise SetupError(
            f"{name} is not a {kind} on this server: choose an endpoint to use a hosted model"
        )
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # ~someone who has no home here
        raise SetupError(f"{name} names a home folder this server does not have") from None
    if not path.is_absolute():
        raise SetupError(f"{name} is not an absolute path: give the {kind}'s whole path")
    if suffix and path.suffix != suffix:
        raise SetupError(f"{path} is not a {suffix} file")
    try:
        found = path.is_file()
    except OSError:  # a name too long for the file system, a folder that cannot be read
        found = False
    if not found:
        raise SetupError(f"no {kind} at {path} on this server")


def check_base_url(url: str) -> None:
    """SetupError unless `url` is empty (OpenAI's own endpoint) or an http(s) URL without
    credentials (a key in the URL would be shown as the base URL)."""
    if not url:
        return
    if len(url) > MAX_CHARS:
        raise SetupError(f"the base URL is longer than {MAX_CHARS} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or _CONTROL.search(url)
        or " " in url
    ):
        raise SetupError(
            f"the base URL {url!r} is not an http(s) URL, such as http://localhost:11434/v1"
        )
    if parts.username or parts.password:
        raise SetupError("the base URL holds credentials: give the key as the API key instead")


def check_api_key(key: str) -> None:
    """SetupError unless the key can go into an HTTP header; the message never shows it."""
    if len(key) > MAX_CHARS or not key.isascii() or _CONTROL.search(key) or " " in key:
        raise SetupError("the API key must be one word of ASCII characters, without spaces")


class ModelSetup:
    """Which model settings are in effect: the server's configured ones, or those saved from
    the panel, which override them until the panel resets them. It owns the settings file."""

    def __init__(self, path: Path, configured: ModelSettings, log: logging.Logger) -> None:
        self.path = path
        self.configured = configured
        self.saved: ModelSettings | None = None
        self.log = log
        self._saving = asyncio.Lock()
        """One change at a time: the file and `saved` agree."""

    @property
    def in_effect(self) -> ModelSettings:
        return self.saved or self.configured

    @property
    def source(self) -> Literal["panel", "server"]:
        return "panel" if self.saved else "server"

    def load(self) -> ModelSettings | None:
        """The settings saved from the panel, read as the server starts. A file that cannot
        be read or is not ours is set aside with a warning: the server starts on its own
        configuration, and the panel's next save replaces the file."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self._set_aside(f"it cannot be read: {reason}")
            return None
        try:
            # Its model is not checked: a file that went missing since is the status's
            # problem to show, in the panel, where it can be set up anew.
            self.saved = ModelSettings.from_json(json.loads(text))
        except json.JSONDecodeError:
            self._set_aside("it is not JSON")
        except ValueError as error:
            self._set_aside(str(error))
        return self.saved

    def _set_aside(self, reason: str) -> None:
        self.log.warning(
            "The model settings saved from the panel in %s are not used (%s): the server's own "
            "configuration is in effect",
            self.path,
            reason,
        )

    def key_for(self, base_url: str, api_key: str | None) -> str:
        """The key a setup of `base_url` gets: `api_key` where given ("" none), else the one
        saved from the panel for that same URL. A key goes to no other endpoint than the one it
        was given for: a URL typed (or mistyped) in the panel gets no key of another's, and the
        server's own key is the administrator's, for the configured endpoint alone."""
        if api_key is not None:
            return api_key
        if self.saved and self.saved.base_url == base_url:
            return self.saved.api_key
        return ""

    def listing_key(self, base_url: str, api_key: str | None) -> str:
        """The key to list `base_url`'s models with: `api_key` where given, else the one saved
        for that URL, else the server's own for the server's own endpoint (see key_for)."""
        if api_key is not None or (self.saved and self.saved.base_url == base_url):
            return self.key_for(base_url, api_key)
        return self.configured.api_key if base_url == self.configured.base_url else ""

    def requested(self, model: str, base_url: str, api_key: str | None) -> ModelSettings | None:
        """The settings a request asks for (None: back to the server's configuration);
        SetupError says what is wrong with them."""
        if not model:
            return None
        check_model(model)
        check_base_url(base_url)
        key = self.key_for(base_url, api_key)
        check_api_key(key)
        return ModelSettings(model, base_url, key)

    async def update(self, settings: ModelSettings | None) -> None:
        """Saves `settings` (None deletes the file). OSError where the file cannot be
        written: the settings in effect stay as they were."""
        async with self._saving:
            if settings is None:
                await asyncio.to_thread(self.path.unlink, missing_ok=True)
            else:
                await asyncio.to_thread(self._write, settings)
            self.saved = settings

    def _write(self, settings: ModelSettings) -> None:
        """Atomically: a reader (a server starting) sees the old file or the new one, whole;
        the file is made with mode 0600 (mkstemp's), so no one else ever reads the key."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".model-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(settings.to_json(), file, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


async def endpoint_models(base_url: str, api_key: str) -> list[str]:
    """The models an OpenAI-compatible endpoint lists (`GET /models`), sorted; SetupError with
    a plain sentence where it cannot say (never with the key in it)."""
    check_base_url(base_url)
    check_api_key(api_key)
    if not base_url and not api_key:
        raise SetupError("OpenAI's endpoint needs an API key to list its models")
    client = openai.AsyncOpenAI(
        api_key=api_key or PLACEHOLDER_KEY,
        base_url=base_url or None,
        max_retries=0,
        timeout=LIST_TIMEOUT_S,
    )
    try:
        async with client:
            listed = {model.id async for model in client.models.list()}
    except openai.APIStatusError as error:
        raise SetupError(_status_reason(error.status_code, error, api_key)) from None
    except openai.APITimeoutError:
        raise SetupError(
            "the endpoint cannot be reached from this server: it did not answer in "
            f"{LIST_TIMEOUT_S:.0f} s"
        ) from None
    except openai.APIConnectionError as error:
        cause = error.__cause__ or error
        reason = _first_line(_hide(str(cause), api_key)) or type(cause).__name__
        raise SetupError(f"the endpoint cannot be reached from this server: {reason}") from None
    except (openai.APIError, ValueError, TypeError, AttributeError):
        raise SetupError(
            "the endpoint's answer to /models is not a list of models: it may not be an "
            "OpenAI-compatible endpoint (most end their URL in /v1)"
        ) from None
    return sorted(name for name in listed if isinstance(name, str))


def _status_reason(status: int, error: openai.APIStatusError, key: str) -> str:
    if status in (401, 403):
        return f"the endpoint refused the key (HTTP {status})"
    if status == 404:
        return (
            "the endpoint answered HTTP 404 to /models: it may not list its models; type the "
            "model's name instead"
        )
    said = error.body.get("message") if isinstance(error.body, dict) else None
    detail = _first_line(_hide(str(said or error.message), key))
    return f"the endpoint answered HTTP {status} to /models" + (f": {detail}" if detail else "")


def _first_line(text: str, limit: int = 200) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _hide(text: str, key: str) -> str:
    """`text` without the key, should an endpoint or a library have echoed it."""
    return text.replace(key, "***") if len(key) >= 4 else text
