# Multi-stage build of the master-guide server on official images.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin master-guide

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app --create-home app
WORKDIR /app
COPY --from=build /src/target/release/master-guide /usr/local/bin/master-guide
USER app
ENV BIND_ADDR=0.0.0.0:8000 DATA_DIR=/app/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
ENTRYPOINT ["master-guide"]
CMD ["serve"]
