# syntax=docker/dockerfile:1
# Kaspero: one image for the API (`serve`), the scheduler and one-off commands (`db migrate`).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY domain ./domain
COPY application ./application
COPY adapters ./adapters
COPY entrypoints ./entrypoints
# the dependencies only, pinned by requirements.lock (`make lock`): the same versions every build;
# the code runs from /app in the runtime stage, next to its migrations
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint requirements.lock . \
 && /opt/venv/bin/pip uninstall --yes kaspero

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    LOG_FORMAT=json \
    KASPERO_DATA_DIR=/tmp/kaspero \
    PROMETHEUS_MULTIPROC_DIR=/tmp/kaspero/prometheus
RUN groupadd --system kaspero && useradd --system --gid kaspero --home-dir /app --shell /usr/sbin/nologin kaspero
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root domain ./domain
COPY --chown=root:root application ./application
COPY --chown=root:root adapters ./adapters
COPY --chown=root:root entrypoints ./entrypoints
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root data ./data
# the version `--version`, /health and /openapi.json report (the package's metadata is not installed)
COPY --chown=root:root pyproject.toml ./pyproject.toml
USER kaspero
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"API_PORT\", \"8000\")}/live', timeout=2)"]
ENTRYPOINT ["python", "-m", "entrypoints.cli"]
CMD ["serve"]
