"""jupyter-notebook-agent: an AI agent that writes and runs cells in Jupyter notebooks."""

try:
    from ._version import __version__
except ImportError:  # a source tree that was never built
    __version__ = "dev"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-notebook-agent"}]


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    from .server.app import NotebookAgent
    from .server.config_log import hide_config_secrets

    hide_config_secrets()  # before the server logs its configuration, ours in it

    return [{"module": "jupyter_notebook_agent", "app": NotebookAgent}]
