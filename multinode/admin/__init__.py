"""The operator side: deploy and upgrade, packaging, credentials, inspection, logs and the dev
server.

Imported by the CLI and by code that administers projects; never by workers or the runtime.
"""
