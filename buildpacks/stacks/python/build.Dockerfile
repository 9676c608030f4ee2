# Python as the Debian suite (SUITE) carries it, with venv and what building packages
# from source needs (a compiler, Python's headers, libpq's headers for psycopg2, git).
ARG OS
FROM ${OS}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 python3-venv python3-dev \
    gcc libc6-dev libpq-dev git >/dev/null \
 && rm -rf /var/lib/apt/lists/* && python3 --version
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
