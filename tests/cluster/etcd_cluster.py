"""A real 3-member etcd cluster (Debian's etcd-server, v3 API), one member
per network namespace of a `netlab.Lab`.

Members are e1..eN on port 2379 (clients) and 2380 (peers) of their own
address; data lives in the run's temporary directory, so a restarted member
rejoins with its log.  `wait_healthy` polls each member's /health endpoint
(an HTTP GET from the client's namespace to the member's address).
"""

import json
import os
import shutil
import time
import urllib.request

from procs import NsProcess

# Straight to the members, whatever proxy the environment names.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

ETCD = os.environ.get("QUIVER_TEST_ETCD", "/usr/bin/etcd")


def etcd_binary():
    """Path of etcd, or None when it is not installed."""
    return ETCD if os.access(ETCD, os.X_OK) else shutil.which("etcd")


class EtcdCluster:
    def __init__(self, lab, workdir, members=3, log=print):
        self.lab, self.log = lab, log
        self.names = [f"e{i + 1}" for i in range(members)]
        self.addrs = {n: lab.add_host(n) for n in self.names}
        initial = ",".join(f"{n}=http://{a}:2380" for n, a in self.addrs.items())
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
        self.members = {}
        for n, a in self.addrs.items():
            cmd = [binary, "--name", n, "--data-dir", os.path.join(workdir, f"etcd-{n}"),
                   "--listen-client-urls", f"http://{a}:2379",
                   "--advertise-client-urls", f"http://{a}:2379",
                   "--listen-peer-urls", f"http://{a}:2380",
                   "--initial-advertise-peer-urls", f"http://{a}:2380",
                   "--initial-cluster", initial, "--initial-cluster-state", "new",
                   "--initial-cluster-token", f"quiver-test-{lab.id}",
                   "--log-level", "warn", "--logger", "zap"]
            self.members[n] = NsProcess(n, lab.ns(n), cmd, os.path.join(workdir, f"{n}.log"))

    def endpoints(self, names=None):
        """`H1:2379,H2:2379,...` of the given (default: all) members."""
        return ",".join(f"{self.addrs[n]}:2379" for n in (names or self.names))

    def url(self):
        """The `--cluster` value: etcd://H1:2379,H2:2379,H3:2379."""
        return "etcd://" + self.endpoints()

    def start(self):
        for m in self.members.values():
            if not m.running():
                m.start()
        return self

    def health(self, name, timeout=1.0):
        """True when member `name` answers /health with health true."""
        try:
            with _http.open(f"http://{self.addrs[name]}:2379/health", timeout=timeout) as r:
                return json.loads(r.read()).get("health") in (True, "true")
        except (OSError, ValueError):
            return False

    def wait_healthy(self, names=None, timeout=30):
        names = names or [n for n, m in self.members.items() if m.running()]
        deadline = time.monotonic() + timeout
        while True:
            sick = [n for n in names if not self.health(n)]
            if not sick:
                return
            for n in sick:
                if not self.members[n].running():
                    raise RuntimeError(f"etcd member {n} exited:\n{self.members[n].tail()}")
            if time.monotonic() > deadline:
                tails = "\n".join(self.members[n].tail() for n in sick)
                raise RuntimeError(f"etcd members {sick} not healthy in {timeout} s:\n{tails}")
            time.sleep(0.2)

    def kill(self, name):
        self.members[name].kill()

    def restart(self, name):
        self.members[name].restart()

    def stop(self):
        for m in self.members.values():
            m.kill()
