//! hoist's one integration test binary. Every test talks to real parts: the `git`
//! client, dockerd, Debian's docker-registry, and a hoistd of its own.

mod api;
mod buildpacks;
mod cli;
mod cluster;
mod dev;
mod hostile;
mod images;
mod in_cluster;
mod kubernetes;
mod logs;
mod page;
mod probe;
mod push;
mod releases;
mod restart;
mod teams;
mod tidy;
mod webhooks;
