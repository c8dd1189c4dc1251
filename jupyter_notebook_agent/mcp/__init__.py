"""The Model Context Protocol, both ways, with the official `mcp` SDK: the agent calls the tools of
the person's MCP servers (`client`), and outside agents work in the open notebook through this
server's own MCP endpoint (`server`), under the same sandbox and the same review."""
