# orderstream worker image: wheels are built in one stage and only they reach the runtime.
#   docker build -t orderstream .
#   docker run --rm -e ORDERSTREAM_BROKER=kafka://kafka:9092 -e ORDERSTREAM_ADMIN_TOKEN=<secret>
#       -v orderstream-data:/data orderstream
# Every setting comes from ORDERSTREAM_* environment variables (orderstream/settings.py). The web server
# binds 0.0.0.0, so a worker refuses to start without a real ORDERSTREAM_ADMIN_TOKEN.
# PYTHON_IMAGE may be pinned to a digest, or pointed at a mirror, without editing this file.
ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: compilers and wheels --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for dependencies that ship no wheel for this platform (they stay in this stage).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > requirements.txt \
    && pip wheel --wheel-dir /wheels -r requirements.txt

# Then the project itself (its own wheel; the dependencies are already in /wheels): the one
# package, without the development tools (devtools/) or the benchmark (bench/).
COPY README.md ./
COPY orderstream ./orderstream
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels .

# --- runtime: the wheels, a non-root user, nothing else -----------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    ORDERSTREAM_WEB_HOST=0.0.0.0 \
    ORDERSTREAM_WEB_PORT=6066 \
    ORDERSTREAM_DATADIR=/data

RUN groupadd --system --gid 10001 orderstream \
    && useradd --system --uid 10001 --gid orderstream --home-dir /home/orderstream \
        --create-home --shell /usr/sbin/nologin orderstream \
    && mkdir -p /data \
    && chown orderstream:orderstream /data

# Installed offline from the builder's wheels only; the wheels themselves are not kept.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels orderstream

# RocksDB tables live here; a worker restarted on the same volume skips most of the recovery.
VOLUME ["/data"]
USER orderstream
WORKDIR /home/orderstream
EXPOSE 6066

# Liveness only (/healthz); readiness (/readyz, tables recovered) is for orchestrators to gate on.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ORDERSTREAM_WEB_PORT', '6066') + '/healthz', timeout=4)"]

# Overridable: `orderstream topics`, `orderstream dlq ...` use the same image (`orderstream demo`
# needs devtools/ on PYTHONPATH: docker-compose.yml's simulator mounts it).
CMD ["faust", "-A", "orderstream.worker.app", "worker", "-l", "info"]
