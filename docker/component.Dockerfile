# genops component image (CPU): the genops package (library, components/, pipelines/) with the
# pinned dependencies of constraints.txt. The base image of every KFP step but train (and tune).
# Build from the repository root; docker/build.sh passes the version and commit:
#   docker build -f docker/component.Dockerfile --build-arg GENOPS_GIT_COMMIT=<sha> .
# The same Python (3.11) as .venv and the lock; see docker/README.md.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# ------------------------------------------------------------ build: a virtualenv in /opt/venv
FROM ${PYTHON_IMAGE} AS build
# torch's CPU build. The PyPI wheel of torch 2.13.0 is the CUDA 13 build and would pull ~3 GB
# of CUDA libraries that no CPU step uses.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt ./
# pip and setuptools as in .venv (pip freeze leaves them out of the lock; torch needs
# setuptools>=77). torch's version comes from the lock: -c constraints.txt pins it.
RUN pip install "pip==26.3" "setuptools==84.2.1" \
 && pip install --no-deps --index-url "${TORCH_INDEX_URL}" -c constraints.txt torch
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
RUN pip install -c constraints.txt . \
 && pip check

# ------------------------------------------------------------ runtime: no compiler, non-root
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/genops \
    MPLCONFIGDIR=/tmp/matplotlib \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_ENABLE_ASYNC_LOGGING=false
# /gcs, /minio and /s3: where the KFP launcher puts artifacts (KFP >= 2.3 mounts emptyDirs
# there; owning them keeps older backends working for a non-root user).
RUN groupadd --system --gid 10001 genops \
 && useradd --system --uid 10001 --gid genops --home-dir /home/genops --create-home \
      --shell /usr/sbin/nologin genops \
 && mkdir -p /gcs /minio /s3 \
 && chown genops:genops /gcs /minio /s3
COPY --from=build /opt/venv /opt/venv
# Configs and the data they name, so `--config pipelines/configs/...` runs as
# /app/pipelines/configs/... (genops submit maps the path).
WORKDIR /app
COPY pipelines/configs ./pipelines/configs
COPY data ./data
USER 10001:10001
# Last, so that a new commit rebuilds only these layers.
ARG GENOPS_VERSION=0.0.0
ARG GENOPS_GIT_COMMIT=unknown
ENV GENOPS_GIT_COMMIT=${GENOPS_GIT_COMMIT}
LABEL org.opencontainers.image.title="genops-component" \
      org.opencontainers.image.description="genops KFP component image (CPU)" \
      org.opencontainers.image.version="${GENOPS_VERSION}" \
      org.opencontainers.image.revision="${GENOPS_GIT_COMMIT}"
