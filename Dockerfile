# pimbot in a container: `pimbot run` as an unprivileged user, state under /data.
#
#   docker build -t pimbot .
#   docker run --env-file pimbot.env -v pimbot-data:/data -p 3000:3000 pimbot
#
# Other commands run the same way: `docker run --env-file pimbot.env pimbot doctor`.

# --- build: install pimbot and its runtime dependencies (not the dev extras) into a venv -----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
RUN python -m venv /opt/pimbot
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
# No extras and no stand_ins/ (the Graph emulator and fake Slack): production carries neither
# them nor what only they need (trustme, werkzeug); .dockerignore keeps them out of the context.
RUN /opt/pimbot/bin/pip install --no-cache-dir .

# --- run: the same slim base, the venv, nothing else ------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/pimbot/bin:$PATH \
    PIMBOT_DATA_DIR=/data

# A fixed uid/gid, so a host directory mounted on /data can be given to it (chown 10001).
RUN groupadd --system --gid 10001 pimbot \
    && useradd --system --no-log-init --uid 10001 --gid pimbot --home-dir /data \
        --shell /usr/sbin/nologin pimbot \
    && mkdir /data \
    && chown pimbot:pimbot /data

COPY --from=build /opt/pimbot /opt/pimbot

# Numeric, so Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
# The default SQLite database (pimbot.db) lives here; with PostgreSQL nothing is written.
VOLUME ["/data"]
# HTTP mode: POST /slack/events, GET /healthz, GET /metrics (PIMBOT_PORT, default 3000).
EXPOSE 3000

# Only meaningful in HTTP mode: in Socket Mode pimbot serves no HTTP, so start those
# containers with --no-healthcheck. slim has no curl, hence Python; urlopen raises (and the
# check fails) on a refused connection and on the 503 /healthz answers when the database is
# unreachable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('PIMBOT_METRICS_PORT') or os.environ.get('PIMBOT_PORT') or '3000'), timeout=4)"]

ENTRYPOINT ["pimbot"]
CMD ["run"]
