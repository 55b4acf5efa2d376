# Forecourt — one image for the web app, the arq worker and the one-shot migration (docker-compose.yml).
#
#   docker build -t forecourt .
#   docker run --rm forecourt forecourt --help
#
# The app finds its templates, static files, catalogs and migrations beside the `backend` package
# (backend/lib/settings.py: ROOT = the folder holding backend/), so the source tree stays in /app and
# the package is installed from there in editable mode.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FORECOURT_ENV=production

WORKDIR /app

# Dependencies first, read from pyproject.toml (runtime only, no test extras), so that a code change
# does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY . .

# The `forecourt` command; translations compiled here (the .mo files are not in git), as `make install` does.
RUN pip install --no-deps -e . \
 && pybabel compile --use-fuzzy -d web/locale -D messages \
 && python -m compileall -q backend workers migrations \
 && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin forecourt \
 && mkdir -p /app/var \
 && chown forecourt:forecourt /app/var

# The code is owned by root and read-only for the app; var/ is only used by the embedded servers,
# which the compose file never needs (it always sets DATABASE_URL and REDIS_URL).
USER forecourt

EXPOSE 8000

CMD ["forecourt", "run", "--host", "0.0.0.0"]
