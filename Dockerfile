# Builds the single liverecall binary into a small runtime image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/liverecall ./cmd/liverecall

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/liverecall /usr/local/bin/liverecall
# Where serve keeps index snapshots under docker compose (a named volume
# mounted here starts with this directory's owner).
RUN mkdir -p /var/lib/liverecall/snapshots && chown 65534:65534 /var/lib/liverecall/snapshots
# A numeric user (nobody), so that Kubernetes can check runAsNonRoot.
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["liverecall"]
CMD ["serve"]
