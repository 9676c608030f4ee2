# The Java runtime only (no compiler, no Maven): the JRE the build image cut with jlink
# (build.Dockerfile says which modules), copied as it is, so that a class-data-sharing
# archive assemble made with the builder's /opt/java-run fits the JVM here.
ARG OS
ARG BUILD
FROM ${BUILD} AS jre
FROM ${OS}
COPY --from=jre /opt/java-run /opt/java
ENV JAVA_HOME=/opt/java \
    PATH=/opt/java/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN java -version
