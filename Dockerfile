# syntax=docker/dockerfile:1
# Container image of saas_exporter:
#   docker build --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) -t saas_exporter .
#   docker run -p 9888:9888 -v saas_exporter_data:/data saas_exporter
# Mount your own configuration over /etc/saas_exporter/config.yml (keep data_dir: /data).
# build/dockerfile_test.go checks this file (go build flags, user, volume, port).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Only the packages the exporter is built from: a local data/ directory
# (store, secret key) must never reach the build.
COPY cmd/saas_exporter ./cmd/saas_exporter
COPY auth ./auth
COPY collector ./collector
COPY config ./config
COPY provider ./provider
COPY store ./store
ARG VERSION=dev
ARG REVISION=unknown
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}" -o /out/saas_exporter ./cmd/saas_exporter
# The data directory must belong to the non-root user; distroless has no
# shell to create it, so it is made here and copied.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/saas_exporter /bin/saas_exporter
COPY --from=build --chown=65532:65532 /out/data /data
COPY <<EOF /etc/saas_exporter/config.yml
# Default configuration of the container image; see config.example.yaml for
# every key. The store, the generated secret key and the generated admin
# password hash live in data_dir: keep it on a volume.
data_dir: /data
EOF
# nonroot in distroless.
USER 65532:65532
VOLUME /data
EXPOSE 9888
# No HEALTHCHECK: Prometheus checks the exporter on every scrape (up), and
# orchestrators can probe /-/healthy and /-/ready.
ENTRYPOINT ["/bin/saas_exporter"]
CMD ["--config.file=/etc/saas_exporter/config.yml"]
