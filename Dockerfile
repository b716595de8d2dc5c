# Quiver — CPU image: quiverd + the quiver CLI on debian:bookworm-slim. It builds with the same
# script CI uses (scripts/bootstrap.sh). The GPU target, metrics port, non-root user and
# HEALTHCHECK come with the operations issue.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV QUIVER_CACHE=/opt/quiver-cache
RUN scripts/bootstrap.sh && \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQUIVER_BUILD_TESTS=OFF -DQUIVER_CUDA=OFF && \
    cmake --build build -j"$(nproc)" --target quiverd quiver

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas0 libgomp1 \
      libjansson4 zlib1g libgrpc29 libprotobuf-c1 && rm -rf /var/lib/apt/lists/*
# The binaries find FAISS through their RUNPATH, which points into this prefix.
COPY --from=build /opt/quiver-cache /opt/quiver-cache
COPY --from=build /src/build/bin/quiverd /src/build/bin/quiver /usr/local/bin/
VOLUME /data
EXPOSE 7070
ENTRYPOINT ["/usr/local/bin/quiverd", "--listen", "0.0.0.0:7070", "--data-dir", "/data"]
