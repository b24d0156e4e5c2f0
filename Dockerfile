# The intents operator image: a static binary on distroless, running as non-root.
FROM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/intents-operator ./cmd/intents-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/intents-operator /intents-operator
USER 65532:65532
ENTRYPOINT ["/intents-operator"]
