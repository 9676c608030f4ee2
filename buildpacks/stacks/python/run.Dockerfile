# The same Python as the build image, without compilers; the app's virtualenv comes in
# its dependency layer (/deps/venv) and is first on PATH.
ARG OS
FROM ${OS}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 libpq5 >/dev/null \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/deps/venv/bin:$PATH PYTHONUNBUFFERED=1 VIRTUAL_ENV=/deps/venv
