"""Issue 8: secrets stay out of the engine and the worker's logs; user payloads are decoded
only in the function's process and the caller's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import multinode as mn
from tests.conftest import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SECRET = "s3cr3t-9f2c1e7a-do-not-leak"

PROBE = '''
import os, sys


class Probe:
    """Appends who decoded it to a file: proves where user payloads are decoded."""

    def __init__(self, path):
        self.path = path

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(self.path, "a") as handle:
            handle.write(f"{os.getpid()} {' '.join(sys.argv)}\\n")
'''

TASKS = '''
import os
from multinode import Multinode
from probe import Probe

mn = Multinode()


@mn.function()
def uses_secret(probe):
    token = os.environ["API_TOKEN"]
    return {"probe": probe, "token_length": len(token)}
'''


def test_secrets_and_payloads_stay_where_they_belong(
    control_plane: ControlPlane, deploy_tasks, tmp_path: Path
) -> None:
    from multinode._client import default_client

    probe_dir = tmp_path / "probe_module"
    probe_dir.mkdir()
    (probe_dir / "probe.py").write_text(PROBE)
    sys.path.insert(0, str(probe_dir))
    try:
        from probe import Probe  # type: ignore[import-not-found]

        manifest = deploy_tasks(TASKS, **{".env": f"API_TOKEN={SECRET}\n", "probe.py": PROBE})
        fn = mn.get_deployed_function(manifest.project_name, "uses_secret")
        decoded_by = tmp_path / "decoded_by.txt"
        invocation_id = fn.start(Probe(str(decoded_by)))
        result = fn.await_result(invocation_id)
        assert result["token_length"] == len(SECRET)
    finally:
        sys.path.remove(str(probe_dir))
        sys.modules.pop("probe", None)

    # Decoded by the function's process (argument) and by this test (result), never by a worker.
    decoders = decoded_by.read_text().splitlines()
    assert any("multinode/runtime/runner" in line for line in decoders), decoders
    assert not any("temporal_workers" in line for line in decoders)

    async def engine_views() -> str:
        engine = await default_client().engine()
        texts = []
        for workflow_id in (invocation_id, f"multinode-project:{manifest.project_name}"):
            handle = engine.client.get_workflow_handle(workflow_id)
            history = await handle.fetch_history()
            texts.append(history.to_json())
            description = await handle.describe()
            texts.append(repr(description.raw_description))
        return "\n".join(texts)

    views = default_client().run(engine_views())
    assert invocation_id in views  # the views are real
    assert SECRET not in views
    assert SECRET not in control_plane.worker_log()


def test_api_key_never_appears_in_settings_or_errors() -> None:
    from multinode._client import Client
    from multinode.contract.connection import ConnectionSettings

    settings = ConnectionSettings("127.0.0.1:1", "mn-key-abcdef123456", "default", "q", "environment")
    assert "mn-key-abcdef123456" not in repr(settings)
    fn = mn.Function("f", project_name="p", client=Client(settings))
    with pytest.raises(mn.errors.ControlPlaneUnavailableError) as caught:
        fn.start(1)
    assert "mn-key-abcdef123456" not in str(caught.value)
