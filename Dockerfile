# syntax=docker/dockerfile:1
#
# caretaker's image: one image for every role.
#   docker build -t caretaker:0.1.0 .
#   docker run --rm caretaker:0.1.0 --help
#   docker run ... caretaker:0.1.0 start --role worker      (scheduler | worker | web | all)
#   docker run ... caretaker:0.1.0 run connections --json
#
# Two stages: `build` compiles the TypeScript with the dev dependencies;
# the runtime stage has the production dependencies, the compiled code and
# the PostgreSQL client tools, and runs as an unprivileged user.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: npm ci + tsc ----------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The lockfile first, so the dependency layer is cached until it changes.
# --ignore-scripts: the "prepare" script runs the build, and the sources are
# not copied yet; the build runs explicitly below.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# --- runtime ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# pg_dump, pg_restore and psql for backup, backup-verify, restore-test and
# dr-drill. Debian bookworm's postgresql-client is PostgreSQL 15: pg_dump
# must be at least the server's major version, so a newer server needs the
# client from the PGDG repository instead. ca-certificates: for
# sslmode=verify-full connections of the client tools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && pg_dump --version && pg_restore --version && psql --version

# A fixed, numeric, unprivileged user: Kubernetes' runAsNonRoot can only
# verify a numeric USER (k8s/ runs it as the same 10001).
RUN groupadd --system --gid 10001 caretaker \
 && useradd --system --uid 10001 --gid caretaker --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin caretaker \
 && install -d -o 10001 -g 10001 -m 0750 /backups
# /backups: the usual mount point of a directory backup store. A new Docker
# named volume mounted there copies this owner, so the backup task can write.

ENV NODE_ENV=production
WORKDIR /app
# Production dependencies only. --ignore-scripts: "prepare" would run the
# TypeScript build, which needs the dev dependencies; the compiled code comes
# from the build stage instead. (Native add-ons used here ship prebuilt
# binaries as optional packages, which install without scripts.)
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY bin ./bin
# dependency-check's shipped versions file (PostgreSQL and Redis releases, end-of-life dates).
COPY data ./data
# The application files stay owned by root: the process can read, not change, them.

USER 10001:10001
EXPOSE 3000

# /health of the web role (200 when Redis and the state database answer, 503 otherwise).
# slim has no curl: Node's own fetch, bounded in time. Only meaningful for a
# container that runs the web role (`start` or `start --role web`); turn it
# off for scheduler/worker-only containers (compose: `healthcheck: { disable: true }`).
# Kubernetes ignores HEALTHCHECK and uses the probes in k8s/.
# CARETAKER_HEALTHCHECK_URL overrides the URL when web.port is not 3000.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.CARETAKER_HEALTHCHECK_URL||'http://127.0.0.1:3000/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]

ENTRYPOINT ["node", "bin/caretaker.js"]
CMD ["start"]
