# The official Airflow image with this provider installed; used by every service of docker-compose.yml
# (the Airflow components and the local Ntropy emulator). The base is a build argument: the official image by
# default; any image with the same layout works (`airflow` user, /opt/airflow, AIRFLOW_VERSION set, an
# entrypoint that runs `airflow <command>`), e.g. the one tests/stack/compose/Containerfile.base builds from
# Debian and PyPI where the official image cannot be pulled.
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2
FROM ${AIRFLOW_BASE_IMAGE}

USER root
# The simple auth manager's passwords file lives here, on a volume that the init job writes.
# Group 0 may write, as in the official image, so that any AIRFLOW_UID can run the containers.
RUN mkdir -p /opt/airflow/auth /opt/ntropy-provider \
    && chown -R airflow:root /opt/airflow/auth /opt/ntropy-provider \
    && chmod -R g+rwX /opt/airflow/auth
USER airflow

COPY --chown=airflow:root pyproject.toml README.md /opt/ntropy-provider/
COPY --chown=airflow:root ntropy_provider /opt/ntropy-provider/ntropy_provider
# Pin Airflow to the image's version so that installing the provider never upgrades or downgrades it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/ntropy-provider[pandas]"
