# cutter server or agent in a container. Build: docker build -t cutter .
FROM node:20-bookworm-slim
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
RUN npx tsc -p . && npm prune --omit=dev
ENTRYPOINT ["node", "/opt/cutter/dist/cli/main.js"]
CMD ["server"]
