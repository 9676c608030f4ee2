# OpenJDK VERSION (a major: 17, 21, 25) as the Debian suite carries it, and Maven for
# repos without ./mvnw. ca-certificates-java turns the system store (with the extra CA
# certificates) into Java's cacerts.
ARG OS
FROM ${OS}
ARG VERSION
RUN apt-get update -q && apt-get install -y -q --no-install-recommends "openjdk-${VERSION}-jdk-headless" \
    ca-certificates-java maven curl unzip >/dev/null \
 && rm -rf /var/lib/apt/lists/* && update-ca-certificates -f >/dev/null 2>&1 && java -version
