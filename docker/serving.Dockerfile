# genops model server image: `genops serve` (the FastAPI server around the MLflow pyfunc model:
# /health, /metadata, /generate) with the genops package and CPU torch, the same venv as the
# component image (the deps and build stages are component.Dockerfile's, so BuildKit reuses
# them). Serves a registered model from the tracking server:
#   docker run --network host -e MLFLOW_TRACKING_URI=http://127.0.0.1:5000 genops/serving:<v> \
#     --model-uri models:/adult-synthesizer@champion
# As a KServe custom predictor: the container's args name the model, port 8080.
# Build from the repository root with BuildKit (docker/build.sh serving).
# checkov:skip=CKV_DOCKER_7:the base is ARG PYTHON_IMAGE, whose default pins python:3.11.15-slim-bookworm (tests/docker checks the pin); checkov does not resolve ARGs
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
    MLFLOW_ENABLE_ASYNC_LOGGING=false
RUN groupadd --system --gid 10001 genops \
 && useradd --system --uid 10001 --gid genops --home-dir /home/genops --create-home \
      --shell /usr/sbin/nologin genops
COPY --from=deps /opt/venv /opt/venv
COPY --from=build /opt/genops /opt/genops
WORKDIR /home/genops
USER 10001:10001
EXPOSE 8080
# Loading the model (and torch) takes a while: 2 minutes before a failing check counts.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["genops", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--model-uri", "models:/adult-synthesizer@champion"]
# Last, so that a new commit rebuilds only these layers.
ARG GENOPS_VERSION=0.0.0
ARG GENOPS_GIT_COMMIT=unknown
ARG GENOPS_SOURCE=unknown
ENV GENOPS_GIT_COMMIT=${GENOPS_GIT_COMMIT}
LABEL org.opencontainers.image.title="genops-serving" \
      org.opencontainers.image.description="genops model server (genops serve, CPU torch)" \
      org.opencontainers.image.version="${GENOPS_VERSION}" \
      org.opencontainers.image.revision="${GENOPS_GIT_COMMIT}" \
      org.opencontainers.image.source="${GENOPS_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
