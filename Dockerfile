# syntax=docker/dockerfile:1
# Vigil server image: `docker compose up` builds it (see docker-compose.yml),
# or `docker build -t vigil . && docker run -p 127.0.0.1:8080:8080 vigil`.

FROM golang:1.26-bookworm AS build
# cgo links the FFmpeg decoder (ingest/decode) and OpenBLAS (tracking).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libavcodec-dev libavformat-dev libswscale-dev libopenblas-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /vigil ./cmd/vigil

FROM debian:bookworm-slim
# The FFmpeg 5.1 and OpenBLAS shared libraries that bookworm's -dev packages
# linked against.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libavcodec59 libavformat59 libswscale6 libopenblas0 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /vigil /usr/local/bin/vigil
# A config for running the image on its own: the synthetic stream, listening
# on every interface so a published port reaches it. docker-compose.yml
# mounts deploy/vigil.yaml over it. config/compose_test.go checks it parses.
COPY <<EOF_CONFIG /etc/vigil/vigil.yaml
listen: 0.0.0.0:8080
streams:
  - id: synth
    url: "synth://?objects=6&w=1280&h=720&fps=15&seed=1"
    infer_fps: 5
EOF_CONFIG
# Relative paths in the config (sinks.kafka.spool_dir, hard_frames.dir) land
# in /var/lib/vigil, owned by the unprivileged user the server runs as.
RUN mkdir -p /var/lib/vigil && chown 65532:65532 /var/lib/vigil
WORKDIR /var/lib/vigil
USER 65532:65532
EXPOSE 8080
CMD ["vigil", "serve", "--config", "/etc/vigil/vigil.yaml"]
