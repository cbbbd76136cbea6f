"""The operator side of Multinode: everything the `multinode` CLI does, as functions.

Import this package (`from multinode import admin`), not its modules: the names below are its
public face, and the CLI uses nothing else of it. Administering code (deploy scripts, CI, tests)
may import it too; workers and the function's runtime never do.

- credentials: `login`, `logout`, `stored_profile_path`
- projects and versions: `deploy`, `upgrade`, `undeploy`, `in_flight_invocations`,
  `list_projects`
- inspection: `describe_project`, `describe_version`, `describe_function`,
  `describe_invocation` (an `InvocationDescription` wraps the public `multinode.Invocation`)
- logs: `read_logs`, and `iter_lines` to cut its chunks into lines
- services: `describe_services`, `wait_for_services` (what deploy prints), `read_service_logs`
- Web UI links: `invocation_url`, `list_url`
- the embedded control plane (`multinode dev`): `DevServer`, `DevServerConfig`

Everything needs only the control plane's address (and key): the registry of projects and
versions lives in the engine. Times are timezone-aware UTC datetimes, except the epoch seconds
of a `VersionManifest`'s `created_at`.

Inside: `credentials`, `profile` (the stored profile), `projects`, `deployment` (packaging and
registering a version), `discovery` (finding a folder's functions, in its own environment),
`inspection`, `logs` and `cloudwatch` (Fargate's logs), `links`, `devserver`.
"""

from multinode.admin.credentials import LoginResult, login, logout, stored_profile_path
from multinode.admin.devserver import DevServer, DevServerConfig
from multinode.admin.inspection import (
    RECENT_INVOCATIONS,
    FunctionDescription,
    InvocationDescription,
    ProjectDescription,
    describe_function,
    describe_invocation,
    describe_project,
    describe_version,
)
from multinode.admin.links import invocation_url, list_url
from multinode.admin.logs import LogStream, iter_lines, read_logs
from multinode.admin.projects import (
    UNDEPLOY_WAIT_SECONDS,
    UndeployResult,
    deploy,
    in_flight_invocations,
    list_projects,
    undeploy,
    upgrade,
)
from multinode.admin.services import (
    SERVICE_START_WAIT_SECONDS,
    ServiceDescription,
    ServiceLogStream,
    describe_services,
    read_service_logs,
    wait_for_services,
)
from multinode.contract.names import DEFAULT_NAMESPACE, DEFAULT_PORT, DEFAULT_TASK_QUEUE, DEFAULT_UI_PORT
from multinode.contract.records import FunctionSpec, VersionManifest
from multinode.contract.services import ServiceSpec, ServiceStatus
from multinode.engine.views import InvocationRow, ProjectListing
from multinode.errors import DevServerError

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_PORT",
    "DEFAULT_TASK_QUEUE",
    "DEFAULT_UI_PORT",
    "RECENT_INVOCATIONS",
    "SERVICE_START_WAIT_SECONDS",
    "UNDEPLOY_WAIT_SECONDS",
    "DevServer",
    "DevServerConfig",
    "DevServerError",
    "FunctionDescription",
    "FunctionSpec",
    "InvocationDescription",
    "InvocationRow",
    "LogStream",
    "LoginResult",
    "ProjectDescription",
    "ProjectListing",
    "ServiceDescription",
    "ServiceLogStream",
    "ServiceSpec",
    "ServiceStatus",
    "UndeployResult",
    "VersionManifest",
    "deploy",
    "describe_function",
    "describe_invocation",
    "describe_project",
    "describe_services",
    "describe_version",
    "in_flight_invocations",
    "invocation_url",
    "iter_lines",
    "list_projects",
    "list_url",
    "login",
    "logout",
    "read_logs",
    "read_service_logs",
    "stored_profile_path",
    "undeploy",
    "upgrade",
    "wait_for_services",
]
