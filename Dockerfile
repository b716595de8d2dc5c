# Quiver images: quiverd + the quiver CLI, built with the same scripts CI runs
# (scripts/bootstrap.sh, then CMake), run as a non-root user with the data on a volume.
#
#   docker build -t quiver .                         CPU image (target cpu, Debian 12 slim)
#   docker build -t quiver-gpu --target gpu .        GPU image on NVIDIA's CUDA 13 images:
#                                                    FAISS with GPU (sm_90) and the CUDA kernels;
#                                                    run with --gpus all (docs/gpu.md)
#   docker run -p 7070:7070 -p 9464:9464 -v quiver-data:/data quiver [extra quiverd flags]
#
# Ports: 7070 gRPC, 9464 Prometheus metrics (/metrics). docs/operations.md has the rest
# (TLS, tokens, logs, compose).
ARG CUDA_DEVEL=nvidia/cuda:13.0.1-devel-ubuntu24.04
ARG CUDA_RUNTIME=nvidia/cuda:13.0.1-runtime-ubuntu24.04

# ---- GPU: build on the CUDA devel image --------------------------------------------------------
FROM ${CUDA_DEVEL} AS build-gpu
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV QUIVER_CACHE=/opt/quiver-cache CUDA_HOME=/usr/local/cuda
RUN scripts/bootstrap.sh --with-gpu && \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQUIVER_BUILD_TESTS=OFF -DQUIVER_CUDA=ON \
      -DQUIVER_FAISS_PREFIX="$(scripts/bootstrap.sh --print-prefix --with-gpu)" && \
    cmake --build build -j"$(nproc)" --target quiverd quiver && \
    scripts/runtime-packages.sh build/bin/quiverd build/bin/quiver > /runtime-packages.txt

# ---- GPU: run on the CUDA runtime image (cuBLAS, cudart from the image) ------------------------
FROM ${CUDA_RUNTIME} AS gpu
COPY --from=build-gpu /runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update && xargs -a /tmp/runtime-packages.txt apt-get install -y \
      --no-install-recommends && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt && \
    useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin quiver && \
    mkdir -p /data && chown quiver /data
# The binaries find FAISS through their RUNPATH, which points into this prefix.
COPY --from=build-gpu /opt/quiver-cache /opt/quiver-cache
COPY --from=build-gpu /src/build/bin/quiverd /src/build/bin/quiver /usr/local/bin/
USER quiver
VOLUME /data
EXPOSE 7070 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/quiver", "--server", "127.0.0.1:7070", "--timeout", "4", "health"]
ENTRYPOINT ["/usr/local/bin/quiverd", "--listen", "0.0.0.0:7070", "--data-dir", "/data", \
            "--metrics-listen", "0.0.0.0:9464", "--log-format", "json", "--device", "auto"]

# ---- CPU: build on Debian 12 -------------------------------------------------------------------
FROM debian:bookworm AS build-cpu
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV QUIVER_CACHE=/opt/quiver-cache
RUN scripts/bootstrap.sh && \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQUIVER_BUILD_TESTS=OFF -DQUIVER_CUDA=OFF \
      -DQUIVER_FAISS_PREFIX="$(scripts/bootstrap.sh --print-prefix)" && \
    cmake --build build -j"$(nproc)" --target quiverd quiver && \
    scripts/runtime-packages.sh build/bin/quiverd build/bin/quiver > /runtime-packages.txt

# ---- CPU: run on Debian 12 slim (the default target: last in the file) -------------------------
FROM debian:bookworm-slim AS cpu
COPY --from=build-cpu /runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update && xargs -a /tmp/runtime-packages.txt apt-get install -y \
      --no-install-recommends && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt && \
    useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin quiver && \
    mkdir -p /data && chown quiver /data
COPY --from=build-cpu /opt/quiver-cache /opt/quiver-cache
COPY --from=build-cpu /src/build/bin/quiverd /src/build/bin/quiver /usr/local/bin/
USER quiver
VOLUME /data
EXPOSE 7070 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/quiver", "--server", "127.0.0.1:7070", "--timeout", "4", "health"]
ENTRYPOINT ["/usr/local/bin/quiverd", "--listen", "0.0.0.0:7070", "--data-dir", "/data", \
            "--metrics-listen", "0.0.0.0:9464", "--log-format", "json"]
