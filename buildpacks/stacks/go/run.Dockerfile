# Go programs are built static (CGO_ENABLED=0 unless the app asks otherwise): the run
# image is the suite's base and nothing else.
ARG OS
FROM ${OS}
