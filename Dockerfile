# syntax=docker/dockerfile:1
# The route image: a release build of the `route` binary on distroless.
#
#   docker build -t route .
#
# The build step is the release build `.ci/run` runs (`cargo build --release --locked --bin
# route`, then a check of the shared libraries it needs against distroless/cc); only its output
# is copied into the final image. The toolchain is pinned to the one CI builds with. No keys or certificates are
# baked in: they come from the Secrets a RouteConfig names, at run time.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin route \
 && cp target/release/route /route

# distroless/cc: glibc, libgcc, libssl3 and CA certificates; no shell, no package manager.
# The :nonroot tag runs as UID/GID 65532, restated numerically below so that Kubernetes'
# runAsNonRoot can check it.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /route /route
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["/route"]
CMD ["serve", "--kube"]
