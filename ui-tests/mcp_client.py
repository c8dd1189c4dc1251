"""An outside agent for the UI tests: the MCP SDK's own client adds one cell to a notebook open in
JupyterLab, prints the call's result as one JSON line, and ends its session once told to (a line
on stdin), so that the test can review the cell in the panel meanwhile.

    python mcp_client.py ENDPOINT_URL NOTEBOOK_PATH
"""

import asyncio
import json
import sys

from mcp import Client
from mcp_types import Implementation

SOURCE = "import socket\nprint(socket.gethostname())"


async def main(url: str, path: str) -> None:
    async with Client(url, client_info=Implementation(name="galata-agent", version="1")) as client:
        added = await client.call_tool("add_cell", {"path": path, "source": SOURCE})
        print(json.dumps(json.loads(added.content[0].text)), flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        ended = await client.call_tool("end_session", {"path": path, "summary": "One cell."})
        print(json.dumps({"ended": not ended.is_error}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
