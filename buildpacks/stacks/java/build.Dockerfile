# OpenJDK VERSION (a major: 17, 21, 25) as the Debian suite carries it, and Maven for
# repos without ./mvnw. ca-certificates-java turns the system store (with the extra CA
# certificates) into Java's cacerts.
#
# /opt/java-run is the run image's JRE, made here and copied from here by run.Dockerfile:
# a JRE cut with jlink from this JDK to the Java SE modules plus the jdk.* modules servers
# use (TLS, zip file systems, locales, charsets, JMX, DNS, Flight Recorder) — 63 MB for
# Java 17, where Debian's headless JRE is 222 MB — trusting the same certificates. The
# builder keeps it so that assemble can make a class-data-sharing archive of the app's
# libraries that fits the JVM the app runs on: the JVM refuses an archive made by another.
# Per-app module lists (jdeps) would cut more but guess wrong for reflection-heavy
# frameworks; one list for every app keeps `hoist rebase` able to patch the JRE.
ARG OS
FROM ${OS}
ARG VERSION
RUN apt-get update -q && apt-get install -y -q --no-install-recommends "openjdk-${VERSION}-jdk-headless" \
    ca-certificates-java maven curl unzip >/dev/null \
 && rm -rf /var/lib/apt/lists/* && update-ca-certificates -f >/dev/null 2>&1 && java -version
RUN set -e; have=" $(java --list-modules | cut -d@ -f1 | tr '\n' ' ') "; modules=""; \
    for module in java.se jdk.unsupported jdk.crypto.ec jdk.crypto.cryptoki jdk.zipfs jdk.localedata \
        jdk.charsets jdk.management jdk.management.agent jdk.naming.dns jdk.net jdk.httpserver jdk.jfr; do \
      case "$have" in *" $module "*) modules="$modules,$module" ;; esac; \
    done; \
    jlink --add-modules "${modules#,}" --strip-java-debug-attributes --no-man-pages --no-header-files \
      --compress=2 --output /opt/java-run; \
    cp --remove-destination "$(readlink -f /etc/ssl/certs/java/cacerts)" /opt/java-run/lib/security/cacerts; \
    /opt/java-run/bin/java -version
