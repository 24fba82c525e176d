# The project image: Python 3.11 with the pinned dependencies and the project installed.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 AIRFLOW_HOME=/opt/airflow
RUN apt-get update && apt-get install -y --no-install-recommends make curl && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 airflow
WORKDIR /opt/hotline
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . && chown -R airflow /opt/hotline
USER airflow
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/hotline/dags HOTLINE_VAR_DIR=/opt/hotline/var
