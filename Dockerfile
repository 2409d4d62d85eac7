# cutter server or agent in a container (docker-compose.yml runs both).
#   docker build -t cutter .
#   docker run -d -p 1883:1883 -p 127.0.0.1:8088:8088 -p 127.0.0.1:11434:11434 -v cutter-data:/var/lib/cutter cutter
# The image runs as the unprivileged `node` user (uid 1000) of the Node image; an agent that runs
# containers needs the host's Docker socket group too (docker-compose.yml: group_add).
FROM node:20-bookworm-slim AS build
WORKDIR /opt/cutter
# node-pty (exec -t) ships no Linux binary: npm builds it, as it does better-sqlite3 where no prebuilt fits.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY shared shared
COPY broker broker
COPY controller controller
COPY agent agent
COPY cli cli
COPY scripts scripts
COPY bench bench
# bench/ollama.ts measures the Ollama API against the documented-API double the tests use.
COPY test/doubles test/doubles
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /opt/cutter
ENV NODE_ENV=production
COPY --from=build /opt/cutter/package.json ./
COPY --from=build /opt/cutter/node_modules node_modules
COPY --from=build /opt/cutter/dist dist
RUN mkdir -p /var/lib/cutter && chown node:node /var/lib/cutter
USER node
# The CLI inside the container finds the server's first admin token under $XDG_DATA_HOME/cutter.
ENV XDG_DATA_HOME=/var/lib
# 1883 MQTT (agents and the CLI dial it), 8088 dashboard and /metrics, 11434 the Ollama-compatible API.
EXPOSE 1883 8088 11434
# Healthy while the server answers /healthz (the agent's own check, on its --health-file, is in docker-compose.yml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8088/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/opt/cutter/dist/cli/main.js"]
CMD ["server", "--data-dir", "/var/lib/cutter", "--http-host", "0.0.0.0", "--ollama-host", "0.0.0.0"]
