# MLflow tracking server: mlflow[auth], psycopg2-binary (PostgreSQL backend store) and boto3 (S3
# artifacts), pinned by docker/mlflow-requirements.txt and the lock (constraints.txt).
# Build from the repository root (docker/build.sh does). Configure it with the environment
# (every `mlflow server` option has one), e.g. in the Kubernetes Deployment:
#   MLFLOW_BACKEND_STORE_URI      postgresql://... (Secret genops-secrets)
#   MLFLOW_ARTIFACTS_DESTINATION  s3://<bucket>/mlflow-artifacts/
#   MLFLOW_SERVER_ALLOWED_HOSTS   mlflow.mlflow.svc.cluster.local:5000,...
# The same image runs `mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"` as a Job (override the
# entrypoint with `mlflow`). Air-gapped (docker/build.sh with GENOPS_OFFLINE=1): the debootstrap
# base and the wheelhouse's common/ set. Build with BuildKit.
# checkov:skip=CKV_DOCKER_7:the base is ARG PYTHON_IMAGE, whose default pins python:3.11.15-slim-bookworm (tests/docker checks the pin); checkov does not resolve ARGs
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# ------------------------------------------------------------ build: a virtualenv in /opt/venv
FROM ${PYTHON_IMAGE} AS build
# Empty: the package index. Air-gapped: PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels/common.
ARG PIP_NO_INDEX=
ARG PIP_FIND_LINKS=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt docker/mlflow-requirements.txt ./
RUN --mount=type=bind,source=docker/wheelhouse,target=/wheels \
    pip install "pip==26.3" "setuptools==84.2.1" \
 && pip install -c constraints.txt -r mlflow-requirements.txt \
 && pip check

# ------------------------------------------------------------ runtime: no compiler, non-root
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/mlflow \
    MLFLOW_HOST=0.0.0.0 \
    MLFLOW_PORT=5000
RUN groupadd --system --gid 10001 mlflow \
 && useradd --system --uid 10001 --gid mlflow --home-dir /home/mlflow --create-home \
      --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/mlflow
USER 10001:10001
EXPOSE 5000
# /health on the server's port ($MLFLOW_PORT, 5000 unless the command says --port=...).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MLFLOW_PORT', '5000'), timeout=4)"]
ENTRYPOINT ["mlflow", "server"]
ARG GENOPS_VERSION=0.0.0
ARG GENOPS_GIT_COMMIT=unknown
ARG GENOPS_SOURCE=unknown
LABEL org.opencontainers.image.title="genops-mlflow" \
      org.opencontainers.image.description="MLflow tracking server (PostgreSQL, S3)" \
      org.opencontainers.image.version="${GENOPS_VERSION}" \
      org.opencontainers.image.revision="${GENOPS_GIT_COMMIT}" \
      org.opencontainers.image.source="${GENOPS_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
