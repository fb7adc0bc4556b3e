# modelhub in a container: Debian (bookworm) slim with Node 20. Mount your hub.yaml at
# /etc/modelhub/hub.yaml; inside the container it must listen on 0.0.0.0 (with keys) to be reached
# through `docker run -p`. Build, run and the container's hub.yaml: docs/deploy.md.

# Build: what `npm install` does in the README's quick start: install (here from the lockfile),
# then the prepare script, `npm run build`. Dependencies' install scripts are off: dtrace-provider's
# (optional, for bunyan) would try to compile and fail quietly, and esbuild's only checks its binary.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY . .
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run build

# Run: production dependencies only (install scripts off: the build is copied from above).
FROM node:20-bookworm-slim
# tini as PID 1 reaps processes that backends leave behind and passes signals on to the hub.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/lib ./dist/lib
COPY bin ./bin
COPY views ./views
ENV NODE_ENV=production \
    HUB_CONFIG=/etc/modelhub/hub.yaml
# The hub and its backends run as the image's unprivileged user; state_dir defaults to its home.
USER node
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
# What `npm start` runs; the config comes from $HUB_CONFIG.
CMD ["node", "bin/hub.js", "serve"]
