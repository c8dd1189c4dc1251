"""Server configuration for the UI tests: the agent on recorded conversations, served over HTTP.

!! Never use this configuration in production because it
opens the server to the world and provide access to JupyterLab
JavaScript objects through the global window variable.
"""

import os
import sys
import tempfile
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

from jupyter_notebook_agent.testing.replay_server import ReplayServerThread, script_from_file

configure_jupyter_server(c)

# CI machines and containers run the tests as root.
c.ServerApp.allow_root = True

# Each recording is a model of its own name (`ui-flow`, `ui-slow`), streamed with its recorded
# timing by an OpenAI-compatible server in this process; a test picks one with the panel's
# `model` setting.
recordings = sorted((Path(__file__).parent / "recordings").glob("*.json"))
# A fixed port where a test types the endpoint's URL into the panel (the no-model server's).
model_server = ReplayServerThread(
    [script_from_file(path, speed=1) for path in recordings],
    port=int(os.environ.get("NOTEBOOK_AGENT_REPLAY_PORT", "0")),
)
model_server.__enter__()
c.NotebookAgent.model = "openai:ui-flow"
c.NotebookAgent.base_url = model_server.base_url
c.NotebookAgent.api_key = "sk-ui-tests"
# The sandbox has tests of its own; here code runs in the local kernel, explicitly allowed.
c.NotebookAgent.kernel_name = "python3"
c.NotebookAgent.allow_unsandboxed = True
c.NotebookAgent.warm_pool_size = 0
# The runs and threads of these tests alone, in a folder of their own.
state = Path(tempfile.mkdtemp(prefix="galata-agent-"))
c.NotebookAgent.store_path = str(state / "runs.sqlite")
# A model set up in the panel is saved here, not in the data folder of whoever runs the tests.
c.NotebookAgent.model_settings_path = str(state / "model.json")

# The person's MCP servers, where a test asks for them: the test tool server, over stdio, whose
# calls wait for the person's approval (the default).
if os.environ.get("NOTEBOOK_AGENT_UI_MCP_SERVERS"):
    c.NotebookAgent.mcp_servers = {
        "tools": {
            "command": sys.executable,
            "args": ["-m", "jupyter_notebook_agent.testing.mcp_tool_server"],
        }
    }

# Uncomment to set server log level to debug level
# c.ServerApp.log_level = "DEBUG"
