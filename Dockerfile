# tiergate: the worker, the approvals page and the CLI in one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[postgres,s3]' && useradd --create-home --uid 10001 tiergate && mkdir -p /data \
    && chown tiergate /data
USER tiergate
ENV TIERGATE_HOME=/data TIERGATE_LOG_FORMAT=json
VOLUME ["/data"]
ENTRYPOINT ["tiergate"]
CMD ["worker"]
