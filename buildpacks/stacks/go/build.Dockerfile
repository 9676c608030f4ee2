# Go at exactly VERSION, from the Go module proxy's golang.org/toolchain module (what
# GOTOOLCHAIN downloads; every release since 1.21 is there), plus git for modules that
# are fetched directly and gcc for cgo.
ARG OS
FROM ${OS}
ARG VERSION
RUN apt-get update -q && apt-get install -y -q --no-install-recommends curl unzip git gcc libc6-dev >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL -o /tmp/go.zip "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${VERSION}.linux-amd64.zip" \
 && unzip -q /tmp/go.zip -d /tmp/go && mv "/tmp/go/golang.org/toolchain@v0.0.1-go${VERSION}.linux-amd64" /usr/local/go \
 && rm -rf /tmp/go /tmp/go.zip \
 && chmod -R a+rX /usr/local/go && chmod a+x /usr/local/go/bin/* /usr/local/go/pkg/tool/linux_amd64/* \
 && /usr/local/go/bin/go version
# The toolchain asked for is the one used: never switch to another one behind the app's back.
ENV PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
