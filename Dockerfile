# The autograde image: one image for every role (API, grading worker, migrations); the command picks
# the role. Build: `docker build -t autograde .`; run with docker-compose.yml (see docs/operations.md).
# BASE_IMAGE: any Debian bookworm image (the deployment test imports one made by debootstrap).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# Debian's Python 3.11 and bubblewrap, the sandbox that runs students' notebooks. The sandbox mounts
# /usr and the interpreter read-only into each run, so the interpreter is the system's, not a copy.
# Versions come from the bookworm release the base image tracks (security updates included).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv bubblewrap ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /app

# Dependencies first, in a layer of their own that only a change to pyproject.toml (which pins every
# version) rebuilds. torch comes from PyTorch's CPU wheel index: `torch==2.13.0` then matches
# `2.13.0+cpu` there, not PyPI's CUDA build with its gigabytes of nvidia-* wheels. Builds without the
# internet pass TORCH_INDEX_URL= and pip's own PIP_INDEX_URL / PIP_FIND_LINKS / PIP_NO_INDEX.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself, installed editable on purpose: service/config.py takes the repository root to be
# the parent of the `service` package and finds alembic.ini, migrations/ and reference/ there. A plain
# `pip install .` would put `service` in site-packages, away from them; editable keeps it in /app.
COPY alembic.ini ./
COPY migrations/ migrations/
COPY reference/ reference/
COPY graders/ graders/
COPY service/ service/
RUN pip install --no-cache-dir --no-deps -e . \
    && python -I -c "from service.config import REPOSITORY_ROOT as r; assert str(r) == '/app', r; assert (r / 'alembic.ini').is_file() and (r / 'reference').is_dir()"

# Never run as root; a numeric USER lets orchestrators (Kubernetes runAsNonRoot) verify that. The
# sources stay owned by root: the service only reads them. As a non-root user bwrap puts each run in
# a user namespace of its own; the worker container must allow that (docker-compose.yml: a seccomp
# profile and an unmasked /proc, see docs/operations.md), or the worker refuses to start.
RUN groupadd --gid 10001 autograde \
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 autograde
USER 10001:10001

ENV AUTOGRADE_ENV=production \
    AUTOGRADE_HOST=0.0.0.0 \
    AUTOGRADE_PORT=8000
EXPOSE 8000

# Python ignores SIGTERM as PID 1 unless it installs a handler; the worker command stops its grading
# processes cleanly on SIGINT (KeyboardInterrupt), and uvicorn handles SIGINT like SIGTERM.
STOPSIGNAL SIGINT

# The image has no curl; the API answers /healthz without touching the database. Worker and migrate
# containers have no HTTP server: docker-compose.yml disables this check for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AUTOGRADE_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["autograde", "serve"]
