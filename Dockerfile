# Quiver image: quiverd + the quiver CLI. It builds with the same script CI uses
# (scripts/bootstrap.sh).
#
#   docker build -t quiver .                       CPU image on Debian 12
#   docker build -t quiver-gpu --build-arg WITH_GPU=1 \
#     --build-arg BUILD_BASE=<Debian 12 image with the CUDA 13 toolkit at /usr/local/cuda> \
#     --build-arg RUNTIME_BASE=<Debian 12 image with the CUDA 13 runtime + cuBLAS> .
#                                                  GPU image: FAISS with GPU (sm_90), the CUDA
#                                                  kernels; run with --gpus all (docs/gpu.md)
# The metrics port, non-root user and HEALTHCHECK come with the operations issue.
ARG BUILD_BASE=debian:bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
ARG WITH_GPU=0
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV QUIVER_CACHE=/opt/quiver-cache
RUN if [ "$WITH_GPU" = 1 ]; then gpu=--with-gpu; cuda=ON; else gpu=; cuda=OFF; fi && \
    scripts/bootstrap.sh $gpu && \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQUIVER_BUILD_TESTS=OFF \
      -DQUIVER_CUDA=$cuda -DQUIVER_FAISS_PREFIX="$(scripts/bootstrap.sh --print-prefix $gpu)" && \
    cmake --build build -j"$(nproc)" --target quiverd quiver

FROM ${RUNTIME_BASE}
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas0 libgomp1 \
      libjansson4 zlib1g libgrpc29 libprotobuf-c1 && rm -rf /var/lib/apt/lists/*
# The binaries find FAISS through their RUNPATH, which points into this prefix.
COPY --from=build /opt/quiver-cache /opt/quiver-cache
COPY --from=build /src/build/bin/quiverd /src/build/bin/quiver /usr/local/bin/
VOLUME /data
EXPOSE 7070
ENTRYPOINT ["/usr/local/bin/quiverd", "--listen", "0.0.0.0:7070", "--data-dir", "/data"]
