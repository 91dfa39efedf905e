# Two stages: build with the pinned toolchain, run on a slim Debian. The eBPF objects are
# committed (ebpf/*.bpf.o), so the build needs no clang; nothing needs protoc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sonde && cp target/release/sonde /sonde

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /sonde /usr/bin/sonde
EXPOSE 10300
ENTRYPOINT ["/usr/bin/sonde"]
