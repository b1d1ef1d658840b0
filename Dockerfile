# The llmgw image used by compose.yaml: edge, workers and metering run from it with different commands.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY llmgw ./llmgw
COPY gateway ./gateway
COPY workers ./workers
COPY metering ./metering
RUN pip install --no-cache-dir .
ENV LLMGW_HOST=0.0.0.0 LLMGW_PORT=4000
EXPOSE 4000
CMD ["llmgw", "edge"]
