# Quiver — CPU image. The GPU target, metrics/health ports and a non-root runtime image come with
# the operations issue; this file builds with the same script CI uses (scripts/bootstrap.sh).
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV QUIVER_CACHE=/opt/quiver-cache
RUN scripts/bootstrap.sh && \
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQUIVER_BUILD_TESTS=OFF -DQUIVER_CUDA=OFF && \
    cmake --build build -j"$(nproc)"

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas0 libgomp1 \
      libjansson4 zlib1g && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/quiver-cache /opt/quiver-cache
COPY --from=build /src/build/bin/quiver /usr/local/bin/quiver
ENTRYPOINT ["/usr/local/bin/quiver"]
