# One image for the exporter, the mailer and the demo's scenario driver; docker-compose.yml
# gives each service its own command. Build: docker compose build (or docker build -t sysnotify:0.1.0 .)
FROM python:3.11.15-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid, so the ownership of files in named volumes stays the same across rebuilds
# (the secrets-init service hands the generated tokens to this uid).
RUN groupadd --system --gid 10001 sysnotify \
 && useradd --system --uid 10001 --gid sysnotify --no-create-home \
        --home-dir /var/lib/sysnotify --shell /usr/sbin/nologin sysnotify \
 && install -d -o sysnotify -g sysnotify -m 0750 /var/lib/sysnotify

# `pip install .` puts the package `sysnotify` (templates and example configs included) into
# site-packages; only stack/ (the demo's story, run with `python -m stack...`) is used from the
# working directory.
WORKDIR /opt/sysnotify
COPY pyproject.toml README.md ./
COPY sysnotify ./sysnotify
COPY exporter ./exporter
COPY mailer ./mailer
COPY templates ./templates
RUN pip install . && rm -rf build ./*.egg-info ./sysnotify ./exporter ./mailer ./templates
COPY stack ./stack

# A new named volume mounted at /var/lib/sysnotify starts out owned by the sysnotify user:
# Docker copies the ownership of the image's directory into it.
USER sysnotify:sysnotify
EXPOSE 9730 9731
CMD ["sysnotify-exporter", "--help"]
