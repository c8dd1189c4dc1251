"""The Model Context Protocol, with the official `mcp` SDK, as the agent's client of the person's
MCP servers (`client`), and what outside agents are given to reach this server's own MCP endpoint
(`bridge`: the client entries, and a stdio bridge for clients that only launch commands). The
endpoint itself is the server's (`server/mcp_endpoint.py`)."""
