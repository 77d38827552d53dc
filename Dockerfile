# syntax=docker/dockerfile:1
# One image for every component; the subcommand is the argument:
#   docker run IMAGE relay --config … | agent --hub … | operator | connect …
# Node.js 24 runs the TypeScript sources directly (type stripping), so there is no build step,
# only production dependencies.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev also skips the `node` devDependency: the base image already is Node.js 24.
# --ignore-scripts: no dependency runs code at install time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && rm -rf /root/.npm

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
  # The user has no home folder; nothing should write one, and /tmp is the one writable mount.
  HOME=/tmp
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# runtime/version.ts reads the version from package.json.
COPY package.json ./
COPY api ./api
COPY cli ./cli
COPY client ./client
COPY gateway ./gateway
COPY kube ./kube
COPY operator ./operator
COPY proto ./proto
COPY relay ./relay
COPY runtime ./runtime
COPY sidecar ./sidecar
COPY transport ./transport
COPY crds ./crds
# Files stay root-owned and read-only to the process: it runs as 65532 (the "nonroot" id of
# distroless, the id the charts and relay Pods set) and writes only to /tmp, an emptyDir in the
# charts, so a read-only root filesystem works.
USER 65532:65532
EXPOSE 8443 8444 9090 9091
# The Node.js flags of cli/node-flags.ts (test/charts/dockerfile.test.ts checks they agree).
ENTRYPOINT ["node", "--initial-old-space-size=64", "--max-semi-space-size=8", "/app/cli/devicestreams.ts"]
CMD ["--help"]
