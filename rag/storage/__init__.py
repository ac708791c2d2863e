"""Storage: the metadata database (catalog, answers, scores), its schema and its migrations.

Imports only the kernel and libraries; everything above uses its public names.
"""
