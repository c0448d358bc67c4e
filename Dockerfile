# The autograde image: one image for every role (API, grading worker, migrations); the command picks
# the role. Build: `docker build -t autograde .`; run with docker-compose.yml (see docs/operations.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in a layer of their own that only a change to pyproject.toml (which pins every
# version) rebuilds. torch comes from PyTorch's CPU wheel index: `torch==2.13.0` then matches
# `2.13.0+cpu` there, not PyPI's CUDA build with its gigabytes of nvidia-* wheels.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/requirements.txt \
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
# sources stay owned by root: the service only reads them.
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

# slim has no curl; the API answers /healthz without touching the database. Worker and migrate
# containers have no HTTP server: docker-compose.yml disables this check for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AUTOGRADE_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["autograde", "serve"]
