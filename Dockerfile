# wallet-service: the HTTP API. The migrations and functions ship inside the package (service/sql,
# service/procedures), so the image needs only the installed package and a DATABASE_URL.
FROM python:3.11-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY sql ./sql
COPY procedures ./procedures
RUN pip install --no-cache-dir . && rm -rf /src

RUN useradd --system --create-home --uid 10001 wallet
USER wallet
WORKDIR /home/wallet

ENV HOST=0.0.0.0 \
    PORT=3000 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 3000

HEALTHCHECK --interval=5s --timeout=3s --retries=10 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/api/v1/health').status != 200)"

# With DATABASE_URL, serve never migrates: it checks that the owner ran `wallet-service migrate` (exits 1
# naming a missing migration) and warns when its role has more rights than wallet_app. The filesystem may be
# read-only (docker-compose.yml: read_only, cap_drop ALL, no-new-privileges). SIGTERM stops it gracefully.
ENTRYPOINT ["wallet-service"]
CMD ["serve"]
