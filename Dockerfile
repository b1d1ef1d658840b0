# The llmgw image used by compose.yaml: edge, workers and metering run from it with different commands.
#
# Dependencies come from requirements.lock (pinned, with hashes), the project itself after them
# with --no-deps. After a change of pyproject.toml's dependencies, regenerate the lock with
#   pip install pip-tools && pip-compile --generate-hashes --strip-extras --allow-unsafe \
#     --no-emit-index-url --no-emit-find-links --output-file=requirements.lock pyproject.toml
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY llmgw ./llmgw
COPY llmgw_cli ./llmgw_cli
COPY gateway ./gateway
COPY workers ./workers
COPY metering ./metering
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin llmgw
USER llmgw
ENV LLMGW_HOST=0.0.0.0 LLMGW_PORT=4000
EXPOSE 4000
CMD ["llmgw", "edge"]
