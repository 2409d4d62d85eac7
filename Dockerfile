# cutter server or agent in a container (docker-compose.yml runs both).
#   docker build -t cutter .
#   docker run -d -p 1883:1883 -p 127.0.0.1:8088:8088 -v cutter-data:/var/lib/cutter cutter server --data-dir /var/lib/cutter --http-host 0.0.0.0
FROM node:20-bookworm-slim AS build
WORKDIR /opt/cutter
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
RUN npx tsc -p . && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /opt/cutter
ENV NODE_ENV=production
COPY --from=build /opt/cutter/package.json ./
COPY --from=build /opt/cutter/node_modules node_modules
COPY --from=build /opt/cutter/dist dist
# 1883 MQTT (agents and the CLI dial it), 8088 dashboard and /metrics.
EXPOSE 1883 8088
ENTRYPOINT ["node", "/opt/cutter/dist/cli/main.js"]
CMD ["server", "--data-dir", "/var/lib/cutter", "--http-host", "0.0.0.0"]
