# Multi-stage build: compile in the Rust image, run in a slim Debian with only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin heliograph

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/heliograph --create-home heliograph
COPY --from=build /src/target/release/heliograph /usr/local/bin/heliograph
USER heliograph
WORKDIR /var/lib/heliograph
ENV HELIOGRAPH_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["heliograph"]
CMD ["serve"]
