# onlytraffic-proxy as a container (a sidecar next to your service).
# Build: docker build -t onlytraffic-proxy .   Run: see docker-compose.example.yml.
#
# The build stage runs exactly `cargo build --release --locked` on the sources; CI runs the same
# command (.ci/docker-build-stage), since no Docker engine runs there.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

# Final stage: distroless with glibc only; no shell, no package manager. The TLS roots are
# compiled into the binary (webpki-roots), so the image needs no CA bundle.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/onlytraffic-proxy /usr/local/bin/onlytraffic-proxy
COPY config/docker.toml /etc/onlytraffic-proxy/config.toml
ENV OTPROXY_CONFIG=/etc/onlytraffic-proxy/config.toml \
    OTPROXY_LOG_FORMAT=json
# 65532 is the "nonroot" user of the distroless image.
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/onlytraffic-proxy", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/onlytraffic-proxy"]
