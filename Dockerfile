# tricorder: one process for OTLP ingest, metrics (Prometheus API) and traces (Jaeger API).
# Build stage: the same steps as the README (./dev build installs what is missing, then builds).
FROM debian:bookworm-slim AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
WORKDIR /src
COPY . .
RUN ./dev build && strip build/tricorder

# Runtime stage: the shared libraries only, a non-root user, data under /data.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends libevent-core-2.1-7 libevent-extra-2.1-7 \
      libevent-pthreads-2.1-7 libnghttp2-14 libprotobuf-c1 libsqlite3-0 libzstd1 libcjson1 zlib1g \
      libsnappy1v5 libre2-9 libyaml-0-2 libssl3 libevent-openssl-2.1-7 libcrypt1 >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tricorder \
 && useradd --system --uid 10001 --gid tricorder --home-dir /data --no-create-home tricorder \
 && mkdir /data && chown tricorder:tricorder /data
COPY --from=build /src/build/tricorder /usr/local/bin/tricorder
USER tricorder
ENV TRICORDER_DATA_DIR=/data
VOLUME /data
EXPOSE 4317 4318 8428
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/usr/local/bin/tricorder", "--healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tricorder"]
