# Herald's container image: one static binary in an empty image.
#
# Build it with `make image` (docker; or `make image CONTAINER=podman`): the binary is built on
# the host, statically (CGO_ENABLED=0), and copied in with the host's CA bundle, so the build
# needs no base image from a registry. For several platforms, `make image-files
# IMAGE_ARCHES="amd64 arm64"`, then `docker buildx build --platform linux/amd64,linux/arm64 .`.
#
# Run it as the reference hub's image is run:
#   docker run -e SERVER_NAME=':80' -e MERCURE_PUBLISHER_JWT_KEY='!ChangeThisMercureHubJWTSecretKey!' \
#     -e MERCURE_SUBSCRIBER_JWT_KEY='!ChangeThisMercureHubJWTSecretKey!' -p 80:80 -v herald-data:/data herald
FROM scratch

ARG TARGETARCH=amd64
ARG VERSION=dev
ARG COMMIT=unknown

LABEL org.opencontainers.image.title="Herald" \
      org.opencontainers.image.description="A Mercure-protocol publish/subscribe hub" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/heraldhub/herald" \
      org.opencontainers.image.documentation="https://github.com/heraldhub/herald/blob/main/docs/migrating.md" \
      org.opencontainers.image.licenses="MIT"

# The CA bundle lets Herald fetch JWKS over HTTPS; the empty build/data/ gives /data to the
# unprivileged user, so a named volume mounted there starts out writable by it.
COPY build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY build/linux-${TARGETARCH}/herald /usr/bin/herald
COPY --chown=65532:65532 build/data/ /data/

# The store (herald.db and its write-ahead log) and any certificate files live in /data, the
# working directory: the default transport_url bolt://herald.db is /data/herald.db.
VOLUME /data
WORKDIR /data
USER 65532:65532

# Plain HTTP on port 80 unless SERVER_NAME says otherwise (the reference hub's `:80`); 443 for
# `listen :443` with `tls /data/cert.pem /data/key.pem`. The unprivileged user binds them with
# no capability where net.ipv4.ip_unprivileged_port_start is 0 in the container's network
# namespace: Docker's default; podman needs --sysctl net.ipv4.ip_unprivileged_port_start=0
# (or SERVER_NAME=:8080 -p 80:8080). See docs/deployment.md.
ENV SERVER_NAME=:80
# With a host name in SERVER_NAME, certificates, their keys and the ACME account are kept in
# /data/herald (data_dir's default under XDG_DATA_HOME), on the volume.
ENV XDG_DATA_HOME=/data
EXPOSE 80 443

# /readyz on the operations listener (metrics_addr, localhost:2019 by default), asked by the
# binary itself: the image has no shell, curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/bin/herald", "healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/herald"]
CMD ["serve"]
