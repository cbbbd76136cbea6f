# syntax=docker/dockerfile:1
# Image for the long-running worker that polls Temporal and launches
# function tasks on Fargate.
#
# Build from the repository root (the context must contain pyproject.toml):
#   docker build -f deploy/images/worker.Dockerfile -t multinode-worker .
#
# Only the package sources are copied below, so a .dockerignore is not needed
# for correctness; to keep the build context small, ignore at least:
#   .git  .venv  **/__pycache__  *.egg-info  build  dist  tests  benchmarks
#   .ci  .env  .env.*   (never send local secrets to the build daemon)
# BuildKit reads deploy/images/worker.Dockerfile.dockerignore if present.

FROM python:3.11-slim

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

RUN useradd --create-home --uid 10001 --user-group multinode
USER 10001:10001
WORKDIR /home/multinode

# Exec form so SIGTERM on deploys reaches Python, which drains in-flight
# activities within the task definition's stopTimeout.
CMD ["python", "-m", "temporal_workers"]
