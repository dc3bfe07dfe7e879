# The diary bot as a container: Debian slim, Python 3.11, the runtime packages exactly as
# pinned (with hashes) in requirements.lock, the CJK font for the charts, a non-root user,
# the database and backups in the /data volume, a HEALTHCHECK on /healthz, the web diary and
# the console on 8090 (for the reverse proxy on the host; see DIARYBOT_TRUSTED_PROXIES).
#
#   docker compose up -d --build          (see compose.yaml and docs/deploy.md)

# ---------------------------------------------------------------- build: venv + the wheel
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/diarybot
COPY requirements.lock ./
RUN /opt/diarybot/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY bot ./bot
COPY conversations ./conversations
COPY storage ./storage
COPY locales ./locales
# The wheel compiles the catalogs (setup.py); --no-index: every dependency must already be
# there from the lock, so a dependency missing from the lock fails the build.
RUN /opt/diarybot/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/diarybot/bin/pip install --no-index /wheels/diarybot-*.whl \
 && /opt/diarybot/bin/pip check

# ---------------------------------------------------------------- run
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin diarybot \
 && mkdir -p /data \
 && chown diarybot:diarybot /data \
 && chmod 0700 /data
COPY --from=build /opt/diarybot /opt/diarybot
ENV PATH=/opt/diarybot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/data/.matplotlib \
    DIARYBOT_DB=/data/diarybot.sqlite3 \
    DIARYBOT_BACKUP_DIR=/data/backups \
    DIARYBOT_HEALTH=0.0.0.0:9102 \
    DIARYBOT_WEB=0.0.0.0:8090
USER diarybot
WORKDIR /data
VOLUME ["/data"]
# 9102: /healthz and /metrics; 8090: the web diary and the console (behind the TLS proxy).
# Inside the container they listen on every address: 127.0.0.1 there is not reachable from the
# host. compose.yaml publishes both on the host's loopback only.
EXPOSE 9102 8090
# 503 (polling stalled 2 min, or an urgent message waiting 5 min) or no answer: unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9102/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["diarybot", "run"]
