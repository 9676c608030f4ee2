# The Java runtime only (no compiler, no Maven): a JRE cut with jlink from the build
# image's JDK to the Java SE modules plus the jdk.* modules servers use (TLS, zip file
# systems, locales, charsets, JMX, DNS, Flight Recorder) — 63 MB for Java 17, where
# Debian's headless JRE is 222 MB — trusting the same certificates as the build image.
# Per-app module lists (jdeps) would cut more but guess wrong for reflection-heavy
# frameworks; one list for every app keeps `hoist rebase` able to patch the JRE.
ARG OS
ARG BUILD
FROM ${BUILD} AS jre
RUN set -e; have=" $(java --list-modules | cut -d@ -f1 | tr '\n' ' ') "; modules=""; \
    for module in java.se jdk.unsupported jdk.crypto.ec jdk.crypto.cryptoki jdk.zipfs jdk.localedata \
        jdk.charsets jdk.management jdk.management.agent jdk.naming.dns jdk.net jdk.httpserver jdk.jfr; do \
      case "$have" in *" $module "*) modules="$modules,$module" ;; esac; \
    done; \
    jlink --add-modules "${modules#,}" --strip-java-debug-attributes --no-man-pages --no-header-files \
      --compress=2 --output /opt/java; \
    cp --remove-destination "$(readlink -f /etc/ssl/certs/java/cacerts)" /opt/java/lib/security/cacerts
FROM ${OS}
COPY --from=jre /opt/java /opt/java
ENV JAVA_HOME=/opt/java \
    PATH=/opt/java/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN java -version
