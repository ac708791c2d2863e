"""The kernel: types, protocols, records, errors, settings and text utilities shared by every package.

It imports no other package of the project (an import-linter contract in pyproject.toml keeps it so):
`ingestion`, `retrieval` and `evals` build on it, and `rag` composes them all on top.
"""
