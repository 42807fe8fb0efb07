# portolan: one image for both roles.
#   docker build -t portolan .
#   docker run -d -p 8500:8500 -p 8600:8600/udp -p 8600:8600/tcp portolan aggregator
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock -e PORTOLAN_AGGREGATOR=ws://<aggregator>:8500 portolan agent
#
# Runs as root: the agent needs the Docker socket, which is root's (or the docker group's, whose
# GID differs between hosts), and anyone who can use that socket is root on the host anyway.
# BASE_IMAGE is any image with Node.js 24 (or 20.19+) and npm (the tests use one made offline with docker import);
# BUILD_IMAGE the same Node with a C compiler, make and Python, for the DNS server's UDP addon.
ARG BASE_IMAGE=node:24-bookworm-slim
ARG BUILD_IMAGE=node:24-bookworm

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Dependencies first, so this layer is reused until the lockfile changes. --ignore-scripts skips
# our own `prepare` (the sources are not copied yet) and the optional native builds of ssh2 and
# cpu-features (no compiler in the slim image; dockerode does not use SSH here).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# Without a C toolchain in BUILD_IMAGE the image still builds, and DNS over UDP runs on Node's dgram.
RUN (npm run build:native || echo "no C toolchain: DNS over UDP will use Node's dgram") \
 && mkdir -p build/Release \
 && npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${BASE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/Release ./build/Release
EXPOSE 8500/tcp 8600/udp 8600/tcp
# Aggregator: its own HTTP API answers. Agent: one of the aggregators (PORTOLAN_AGGREGATOR may list several) reports this node's agent connection
# (serfHealth) as passing, i.e. the agent holds a live WebSocket. Configuration is read from the
# PORTOLAN_* environment (as in docker-compose.multihost.yml); the role from the container's command.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["node", "-e", "const e=process.env,a=require('fs').readFileSync('/proc/1/cmdline','utf8').split('\\0'),agent=a[a.findIndex((s)=>s.endsWith('portolan.js'))+1]==='agent';const urls=agent?(e.PORTOLAN_AGGREGATOR||'').split(',').map((u)=>u.trim().replace(/^ws/,'http').replace(/\\/*$/,'')+'/v1/health/node/'+encodeURIComponent(e.PORTOLAN_NODE||require('os').hostname())):['http://127.0.0.1:'+(e.PORTOLAN_HTTP||'8500').split(':').pop()+'/v1/status/leader'];const check=(url)=>fetch(url,{signal:AbortSignal.timeout(4000)}).then((r)=>r.ok?r.json():Promise.reject(new Error('HTTP '+r.status))).then((b)=>{if(agent&&!b.some((c)=>c.CheckID==='serfHealth'&&c.Status==='passing'))throw new Error('agent not connected');}).catch((err)=>{throw new Error(url+': '+err.message);});Promise.any(urls.map(check)).then(()=>process.exit(0),(err)=>{console.error(err.errors.map((x)=>x.message).join('; '));process.exit(1);});"]
# node is PID 1: portolan handles SIGTERM/SIGINT itself (the agent says goodbye, then exits).
# With NODE_FLAGS (cli/v8-tuning.ts says why; test/unit/node-flags.test.ts keeps the two equal).
ENTRYPOINT ["node", "--max-semi-space-size=16", "/app/dist/cli/portolan.js"]
CMD ["--help"]
