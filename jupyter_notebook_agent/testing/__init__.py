"""Tools for testing the agent without a real model: a model server that replays scripted
turns over HTTP, and a tiny random-weight GGUF that llama.cpp loads in milliseconds. The tests,
the benchmarks and `doctor` use them; the agent and the server never do."""
