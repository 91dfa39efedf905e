# The sonde image for registries' CI: build the static binary inside Docker, ship it FROM
# scratch. The final stage is the same as the one scripts/image.sh builds locally from a
# binary built on the host (scripts/build-static.sh); use that script where nothing can be
# pulled (it needs no base image at all). The eBPF objects are committed (ebpf/*.bpf.o), so
# the build needs no clang; nothing needs protoc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN SONDE_STATIC_DIR=/out scripts/build-static.sh

# Nothing but the binary: it is statically linked, resolves no names through NSS and carries
# no TLS (see docs/operations.md, "Image and static binary").
FROM scratch
COPY --from=build /out/sonde /usr/bin/sonde
EXPOSE 10300
ENTRYPOINT ["/usr/bin/sonde"]
