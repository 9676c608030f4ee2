# The Node.js runtime (and npm, for `npm start`) at VERSION, copied from the build image
# hoistd just made (BUILD); the app's node_modules come in its dependency layer
# (/deps/node_modules, linked from /app/node_modules).
ARG OS
ARG BUILD
FROM ${BUILD} AS build
FROM ${OS}
COPY --from=build /opt/node /opt/node
ENV PATH=/app/node_modules/.bin:/opt/node/bin:$PATH NODE_ENV=production
