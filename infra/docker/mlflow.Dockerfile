# syntax=docker/dockerfile:1.7
# MLflow tracking server image: mlflow[auth] + psycopg2 + boto3 only, each at the version uv.lock pins
# (the lock is exported as constraints), so the server matches the clients of the project image.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG UV_VERSION=0.13.8
ENV PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never

RUN pip install --no-cache-dir "uv==${UV_VERSION}" && useradd --create-home --uid 1000 mlflow
COPY pyproject.toml uv.lock /build/lock/
RUN cd /build/lock \
 && uv export --frozen --all-groups --no-emit-project --no-hashes --output-file /build/constraints.txt \
 && uv pip install --system --no-cache --constraint /build/constraints.txt "mlflow[auth]" psycopg2-binary boto3 \
 && rm -rf /build

USER mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
