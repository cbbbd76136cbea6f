"""Activities: all the worker's I/O (running attempts, coordination reads and writes).

Imported by the worker only.
"""
