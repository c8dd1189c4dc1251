"""Notebook operations on nbformat cells, and the output digests the model reads."""

from .document import METADATA_KEY, CellNotFound, NotebookDocument
from .outputs import OutputCollector, digest

__all__ = ["METADATA_KEY", "CellNotFound", "NotebookDocument", "OutputCollector", "digest"]
