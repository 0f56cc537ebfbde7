# The portal's image: `launcher serve` as the unprivileged user launcher (uid 10001), from a
# virtual environment in /opt/launcher. Kubernetes (deploy/kubernetes) and docker-compose.yml
# run it with a read-only root filesystem: the spool and /tmp are mounted volumes.
# Base image pinned to a patch release; pin its digest too where your registry policy asks.
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY launcher ./launcher
COPY templates ./templates
COPY static ./static
RUN python -m venv /opt/launcher \
    && /opt/launcher/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/launcher/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/launcher/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# numeric ids, so that Kubernetes can verify runAsNonRoot (deploy/kubernetes/base sets the same)
RUN groupadd --system --gid 10001 launcher \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin launcher
COPY --from=build /opt/launcher /opt/launcher
WORKDIR /app
# the example registry (the default LAUNCHER_APPS_FILE, config/apps.yaml); mount your own
COPY config ./config
# the default LAUNCHER_SPOOL_DIR (var/spool) for runs without a mounted spool
RUN mkdir -p /app/var/spool && chown -R 10001:10001 /app/var
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["launcher", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
