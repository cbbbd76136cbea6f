# syntax=docker/dockerfile:1
# Image for function containers: one Fargate task per call runs this.
#
# Build from the repository root (the context must contain pyproject.toml):
#   docker build -f deploy/images/function.Dockerfile -t multinode-function .
#
# Only the package sources are copied below, so a .dockerignore is not needed
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
COPY multinode ./multinode
COPY temporal_workers ./temporal_workers
COPY cli ./cli
RUN pip install . && rm -rf /tmp/multinode-src

# User code runs here; a home directory gives caches (pip, uv) a writable place.
RUN useradd --create-home --uid 10001 --user-group multinode
USER 10001:10001
WORKDIR /home/multinode

# Exec form keeps Python as the process that receives SIGTERM from StopTask
# (ECS adds an init process via initProcessEnabled; use `docker run --init` locally).
ENTRYPOINT ["python", "-m", "multinode.runtime.fargate_container"]
