# The ramp-operator image: a static musl binary on a distroless base, non-root.
# (It cannot be built on the development machines, which have no Docker engine.)
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p ramp-operator \
 && cp target/x86_64-unknown-linux-musl/release/ramp-operator /ramp-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ramp-operator /ramp-operator
USER 65532:65532
ENTRYPOINT ["/ramp-operator"]
CMD ["run"]
