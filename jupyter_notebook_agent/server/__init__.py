"""The Jupyter server extension: ExtensionApp, handlers, runs."""
