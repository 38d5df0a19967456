# genops component image (CPU): the genops package (library, components/, pipelines/) with the
# pinned dependencies of constraints.txt. The base image of every KFP step but train (and tune).
# Build from the repository root with BuildKit; docker/build.sh passes the version and commit:
#   docker build -f docker/component.Dockerfile --build-arg GENOPS_GIT_COMMIT=<sha> .
# Air-gapped (docker/build.sh with GENOPS_OFFLINE=1, `make images OFFLINE=1`): PYTHON_IMAGE is
# the debootstrap base and pip reads only the wheelhouse (PIP_NO_INDEX, PIP_FIND_LINKS).
# The same Python (3.11) as .venv and the lock; see docker/README.md.
# checkov:skip=CKV_DOCKER_7:the base is ARG PYTHON_IMAGE, whose default pins python:3.11.15-slim-bookworm (tests/docker checks the pin); checkov does not resolve ARGs
# checkov:skip=CKV_DOCKER_2:a KFP step image runs one command and exits; there is no service to check (the serving and mlflow images have a HEALTHCHECK)
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

# ------------------------------------------------------------ requirements: pyproject's list
# The [project] dependencies of pyproject.toml, one per line. BuildKit keys the next stage on
# this file's content: editing the rest of pyproject.toml (tool settings, dev extras) reuses
# the dependency layers.
FROM ${PYTHON_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >requirements.txt

# ------------------------------------------------------------ deps: a virtualenv in /opt/venv
# Only the lock and the requirements reach this stage, so a source change reuses it (and the
# image layer that holds it).
FROM ${PYTHON_IMAGE} AS deps
# torch's CPU build. The PyPI wheel of torch 2.13.0 is the CUDA 13 build and would pull ~3 GB
# of CUDA libraries that no CPU step uses.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Empty: the package index. Air-gapped: PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels/<set> ...
ARG PIP_NO_INDEX=
ARG PIP_FIND_LINKS=
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt ./
COPY --from=requirements /src/requirements.txt ./
# pip and setuptools as in .venv (pip freeze leaves them out of the lock; torch needs
# setuptools>=77). torch's version comes from the lock: -c constraints.txt pins it. Then the
# requirements, under the lock.
RUN --mount=type=bind,source=docker/wheelhouse,target=/wheels \
    pip install "pip==26.3" "setuptools==84.2.1" \
 && pip install --no-deps --index-url "${TORCH_INDEX_URL}" -c constraints.txt torch \
 && pip install -c constraints.txt -r requirements.txt \
 && pip check
# Nothing a step runs: the packages' test suites and torch's C++ headers (no compiler here).
RUN find /opt/venv/lib/python3.11/site-packages -depth -type d -name tests -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include \
      /opt/venv/lib/python3.11/site-packages/torch/test

# ------------------------------------------------------------ build: the genops package alone
FROM deps AS build
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
# Into /opt/genops (on PYTHONPATH), not the venv: its layer is the only one a commit changes.
RUN pip install --no-deps --no-build-isolation --no-compile --target /opt/genops -c constraints.txt . \
 && PYTHONPATH=/opt/genops pip check

# ------------------------------------------------------------ runtime: no compiler, non-root
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/genops/bin:/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/genops \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/genops \
    GENOPS_HOME=/tmp/genops \
    MPLCONFIGDIR=/tmp/matplotlib \
    GIT_PYTHON_REFRESH=quiet \
    GX_ANALYTICS_ENABLED=false \
    MLFLOW_ENABLE_ASYNC_LOGGING=false
# /gcs, /minio and /s3: where the KFP launcher puts artifacts (KFP >= 2.3 mounts emptyDirs
# there; owning them keeps older backends working for a non-root user).
RUN groupadd --system --gid 10001 genops \
 && useradd --system --uid 10001 --gid genops --home-dir /home/genops --create-home \
      --shell /usr/sbin/nologin genops \
 && mkdir -p /gcs /minio /s3 \
 && chown genops:genops /gcs /minio /s3
COPY --from=deps /opt/venv /opt/venv
# Configs and the data they name, so `--config pipelines/configs/...` runs as
# /app/pipelines/configs/... (genops submit maps the path).
WORKDIR /app
COPY pipelines/configs ./pipelines/configs
COPY data ./data
COPY --from=build /opt/genops /opt/genops
USER 10001:10001
# Last, so that a new commit rebuilds only these layers.
ARG GENOPS_VERSION=0.0.0
ARG GENOPS_GIT_COMMIT=unknown
ARG GENOPS_SOURCE=unknown
ENV GENOPS_GIT_COMMIT=${GENOPS_GIT_COMMIT}
LABEL org.opencontainers.image.title="genops-component" \
      org.opencontainers.image.description="genops KFP component image (CPU)" \
      org.opencontainers.image.version="${GENOPS_VERSION}" \
      org.opencontainers.image.revision="${GENOPS_GIT_COMMIT}" \
      org.opencontainers.image.source="${GENOPS_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
