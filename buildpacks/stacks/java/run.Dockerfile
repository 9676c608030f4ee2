# The Java runtime only (no compiler, no Maven): OpenJDK VERSION's headless JRE, trusting
# the same certificates as the build image.
ARG OS
FROM ${OS}
ARG VERSION
RUN apt-get update -q && apt-get install -y -q --no-install-recommends "openjdk-${VERSION}-jre-headless" \
    ca-certificates-java >/dev/null \
 && rm -rf /var/lib/apt/lists/* && update-ca-certificates -f >/dev/null 2>&1 && java -version
