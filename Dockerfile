# llmrelay's container image (docs/deploy.md).
#
#   docker build -t llmrelay .
#   docker run -p 4000:4000 -v $PWD/llmrelay.yaml:/etc/llmrelay/config.yaml:ro \
#     -e ANTHROPIC_API_KEY llmrelay
#   docker run --rm -v $PWD/llmrelay.yaml:/etc/llmrelay/config.yaml:ro llmrelay \
#     db upgrade --config /etc/llmrelay/config.yaml        # one-shot: migrate PostgreSQL
#
# The config is a mounted file; secrets come from the environment as ${VAR} in it.
# Two stages: the first builds the wheel and a virtualenv with every dependency (all of them
# ship manylinux wheels, so no compiler is installed in either stage); the second copies only
# that virtualenv onto a clean slim base and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY llmrelay ./llmrelay
RUN python -m venv /opt/llmrelay \
 && /opt/llmrelay/bin/pip install --no-cache-dir . \
 && /opt/llmrelay/bin/llmrelay --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="llmrelay" \
      org.opencontainers.image.description="An AI gateway: one URL and one key in front of every model" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/llmrelay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LLMRELAY_HEALTH_URL=http://127.0.0.1:4000/health
RUN groupadd --system --gid 10001 llmrelay \
 && useradd --system --uid 10001 --gid llmrelay --home-dir /var/lib/llmrelay \
      --shell /usr/sbin/nologin llmrelay \
 && mkdir -p /etc/llmrelay /var/lib/llmrelay \
 && chown llmrelay:llmrelay /var/lib/llmrelay
COPY --from=build /opt/llmrelay /opt/llmrelay
# SQLite files, the usage spill and dead-letter files go here unless the config says
# otherwise: give usage.path an absolute path under /var/lib/llmrelay (a volume).
WORKDIR /var/lib/llmrelay
USER 10001:10001
EXPOSE 4000
# /health answers 200 while the process serves; 3 s to answer, 3 misses = unhealthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['LLMRELAY_HEALTH_URL'], timeout=3)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["llmrelay"]
CMD ["serve", "--config", "/etc/llmrelay/config.yaml", "--host", "0.0.0.0"]
