# supportbot: a static binary on a distroless base, running as a non-root user, with
# the database on the /data volume. Configure it with SUPPORTBOT_* variables.
#
#   docker build -t supportbot .
#   docker run -p 8080:8080 supportbot     # the local portal: open http://localhost:8080
#   docker run -p 8080:8080 -v supportbot-data:/data \
#     -e SUPPORTBOT_BITRIX_WEBHOOK_URL=https://PORTAL/rest/1/SECRET/ \
#     -e SUPPORTBOT_BITRIX_APPLICATION_TOKEN=... supportbot

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same build CI checks.
RUN VERSION="$VERSION" sh .ci/build /out/supportbot && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/supportbot /usr/local/bin/supportbot
# A volume starts with the image's directory and owner: the non-root user can write.
COPY --from=build --chown=65532:65532 /out/data /data
ENV SUPPORTBOT_DB_PATH=/data/supportbot.db \
    SUPPORTBOT_HTTP_ADDR=:8080 \
    SUPPORTBOT_LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/supportbot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/supportbot"]
CMD ["serve"]
