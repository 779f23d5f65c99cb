# etcd image for quiver's cluster mode (docker-compose `cluster` profile,
# deploy/k8s/cluster/), built from Debian's etcd-server package on the same
# local base as the quiver image, so nothing is pulled from a registry:
#
#   sudo deploy/base-image.sh
#   docker build -f deploy/etcd.Dockerfile --build-arg BASE_IMAGE=quiver-base:bookworm \
#     -t quiver-etcd:latest deploy
#
# (the context is only used for nothing: any directory works). The
# entrypoint is etcd itself; compose and Kubernetes pass the member flags.
# etcdctl (etcd-client) is included for health checks and operations.

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# No service start during the install (there is no init in the build).
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       etcd-server etcd-client \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
    && rm -f /usr/sbin/policy-rc.d \
    && mkdir -p /var/lib/etcd && chown 10002:10002 /var/lib/etcd
# A fixed unprivileged uid/gid (10002) owning the data volume; the k8s
# manifests use the same.
USER 10002:10002
ENV ETCDCTL_API=3
VOLUME ["/var/lib/etcd"]
EXPOSE 2379 2380
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
    CMD ["etcdctl", "--endpoints=http://127.0.0.1:2379", "--command-timeout=3s", "endpoint", "health"]
ENTRYPOINT ["/usr/bin/etcd"]
