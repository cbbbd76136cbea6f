"""The contract between the SDK, the CLI, the workers and the function's process: engine names, wire
records, limits, ids, the value codec, connection settings and function options.

Imported by every other role; imports nothing of theirs, and never temporalio, boto3 or pydantic.
"""
