# syntax=docker/dockerfile:1
#
# The serving image. Two flavours from one file:
#   docker build -t serving:cuda .                                   # CUDA 12.8, Ubuntu 24.04 (default)
#   docker build -t serving:cpu --build-arg TORCH_FLAVOUR=cpu .      # CPU only, Ubuntu 24.04
# Run it with a Hugging Face checkpoint folder mounted read-only at /models:
#   docker run --gpus all -p 8000:8000 -p 50051:50051 -v /path/to/checkpoint:/models:ro serving:cuda
# Every server flag can be set by its environment variable (see deploy/README.md).

ARG TORCH_FLAVOUR=cuda

# ---- build: publish a self-contained server, so the runtime stages need no .NET install ----
FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
ARG TORCH_FLAVOUR
WORKDIR /src
# Restore first, from the project files alone, so source edits reuse the restore layer.
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY build/ build/
COPY protos/ protos/
COPY src/Serving.Engine/Serving.Engine.csproj src/Serving.Engine/
COPY src/Serving.Server/Serving.Server.csproj src/Serving.Server/
RUN dotnet restore src/Serving.Server/Serving.Server.csproj -r linux-x64 -p:TorchFlavour=${TORCH_FLAVOUR}
COPY src/ src/
RUN dotnet publish src/Serving.Server/Serving.Server.csproj --no-restore -c Release -r linux-x64 \
        --self-contained -p:TorchFlavour=${TORCH_FLAVOUR} -o /app

# ---- runtime bases: the CUDA runtime (with cuDNN) or plain Ubuntu; both Ubuntu 24.04 ----
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS runtime-cuda
ENV Server__Device=cuda
FROM ubuntu:24.04 AS runtime-cpu
ENV Server__Device=cpu

# ---- final image ----
# hadolint ignore=DL3006
FROM runtime-${TORCH_FLAVOUR} AS final
# What a self-contained .NET app needs from the OS (ICU: the tokenizers normalize Unicode), and curl for
# the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libicu74 libssl3t64 tzdata zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 serving \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin serving \
    && mkdir -p /models && chown 10001:10001 /models
COPY --from=build --chown=root:root /app /app
WORKDIR /app

# Configuration by environment variable; the checkpoint is mounted at /models.
ENV Server__Host=0.0.0.0 \
    Server__Port=8000 \
    Server__GrpcPort=50051 \
    Server__Model=/models \
    Server__ShutdownTimeout=60 \
    DOTNET_gcServer=1
VOLUME ["/models"]
EXPOSE 8000 50051

USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${Server__Port}/health" || exit 1
# The server handles SIGTERM itself: it stops admitting, drains for Server__ShutdownTimeout seconds, exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/Serving.Server"]
CMD []
