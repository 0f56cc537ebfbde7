FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY launcher ./launcher
COPY templates ./templates
COPY static ./static
RUN pip install --no-cache-dir . && useradd --system --home /app launcher && mkdir -p /app/var && chown launcher /app/var
COPY config ./config
USER launcher
EXPOSE 8000
CMD ["launcher", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
