"""Storage: the metadata database (catalog, answers, scores), its schema and its migrations.

Imports only the kernel (rag.types, rag.errors, rag.settings) and libraries; everything above uses its public names.
"""
