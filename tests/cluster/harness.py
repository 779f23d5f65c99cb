"""The multi-host cluster under test: a 3-member etcd and N quiver nodes,
each in its own network namespace (see netlab.py), torn down on exit even
when the test fails.

    with Cluster(binary, stubs, nodes=3) as c:
        c.start()                       # etcd, then the nodes, until serving
        cl = c.client("n1")             # qclient.Client of node n1
        c.kill("n2"); c.restart("n2")   # SIGKILL / start again (same data)
        c.partition("n3"); c.heal("n3")
        c.etcd.kill("e1"); c.etcd.restart("e1")
        c.restart_all()                 # SIGKILL every process, start all

Nodes are n1..nN, serving 0.0.0.0:6334 in their namespace, registered with
`--cluster etcd://E1:2379,E2:2379,E3:2379 --node-id nK --advertise ADDR:6334`
and QUIVER_ALLOW_ANONYMOUS=true (the test network is private to the run).
Logs and data live in a temporary directory; with keep_dir the logs are
kept and their path printed (for a failure's post-mortem).
"""

import os
import shutil
import tempfile
import time

import grpc

import netlab
import qclient
from etcd_cluster import EtcdCluster
from outcome import Skipped
from procs import NsProcess

PORT = 6334


class QuiverNode(NsProcess):
    def __init__(self, name, lab, binary, workdir, cluster_url, cluster_name=None,
                 data_dir=None, extra=()):
        self.addr = f"{lab.addr(name)}:{PORT}"
        self.data = data_dir or os.path.join(workdir, "data", name)
        cmd = [binary, "serve", "--data", self.data, "--addr", f"0.0.0.0:{PORT}",
               "--metrics-addr", "off"]
        if cluster_url:  # None: today's single node, in its own namespace
            cmd += ["--cluster", cluster_url, "--node-id", name, "--advertise", self.addr]
        if cluster_name:
            cmd += ["--cluster-name", cluster_name]
        cmd += list(extra)
        env = {"QUIVER_ALLOW_ANONYMOUS": "true", "NO_COLOR": "1",
               "QUIVER_LOG": os.environ.get("QUIVER_TEST_NODE_LOG", "info")}
        super().__init__(name, lab.ns(name), cmd, os.path.join(workdir, f"{name}.log"), env)


class Cluster:
    def __init__(self, binary, stubs, nodes=3, log=print, keep_dir=False, cluster_name=None):
        self.binary, self.stubs, self.log = binary, stubs, log
        self.n_nodes = nodes
        self.cluster_name = cluster_name
        self.keep_dir = keep_dir
        self.workdir = tempfile.mkdtemp(prefix="quiver-cluster-")
        self.lab = netlab.Lab(log)
        self.etcd = None
        self.nodes = {}
        self._clients = {}

    def __enter__(self):
        self.lab.__enter__()
        try:
            self.etcd = EtcdCluster(self.lab, self.workdir, log=self.log)
            for i in range(self.n_nodes):
                self.add_node(f"n{i + 1}", start=False)
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __exit__(self, exc_type, *_):
        self.close(failed=exc_type is not None and not issubclass(exc_type, Skipped))

    # --- lifecycle -------------------------------------------------------------
    def add_node(self, name, start=True, **kw):
        """A new host + quiver node `name` (not started unless `start`)."""
        if name not in self.lab.hosts:
            self.lab.add_host(name)
        node = QuiverNode(name, self.lab, self.binary, self.workdir, self.etcd.url(),
                          kw.pop("cluster_name", self.cluster_name), **kw)
        self.nodes[name] = node
        if start:
            node.start()
            self.wait_serving([name])
        return node

    def start(self, timeout=60):
        t0 = time.monotonic()
        self.etcd.start()
        self.etcd.wait_healthy(timeout=timeout)
        for n in self.nodes.values():
            if not n.running():
                n.start()
        self.wait_serving(timeout=timeout)
        self.log(f"cluster: etcd x{len(self.etcd.names)} + {len(self.nodes)} nodes serving "
                 f"in {time.monotonic() - t0:.1f} s")
        return self

    def wait_serving(self, names=None, timeout=60):
        """Waits until every named (default: every running) node reports SERVING."""
        names = names or [n for n, p in self.nodes.items() if p.running()]
        deadline = time.monotonic() + timeout
        last = {}
        while True:
            waiting = []
            for n in names:
                node = self.nodes[n]
                if not node.running():
                    raise RuntimeError(f"node {n} exited with {node.proc.returncode}:\n{node.tail()}")
                last[n] = self.client(n).health()
                if last[n] != "SERVING":
                    waiting.append(n)
            if not waiting:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(self.nodes[n].tail() for n in waiting)
                raise RuntimeError(f"nodes not SERVING in {timeout} s: "
                                   f"{ {n: last[n] for n in waiting} }\n{tails}")
            time.sleep(0.2)

    def kill(self, name):
        self.nodes[name].kill()

    def restart(self, name, wait=True):
        self.nodes[name].restart()
        if wait:
            self.wait_serving([name])

    def partition(self, name):
        self.lab.partition(name)

    def heal(self, name):
        self.lab.heal(name)

    def restart_all(self, timeout=90):
        """SIGKILLs every node and etcd member, then starts them all again."""
        for n in self.nodes.values():
            n.kill()
        self.etcd.stop()
        self.start(timeout=timeout)

    def close(self, failed=False):
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        for n in self.nodes.values():
            n.kill()
        if self.etcd:
            self.etcd.stop()
        if failed:
            self.log("cluster: last log lines of every process:")
            for p in [*self.nodes.values(), *(self.etcd.members.values() if self.etcd else [])]:
                self.log(p.tail(15))
        self.lab.close()
        if self.keep_dir or (failed and os.environ.get("QUIVER_TEST_KEEP")):
            self.log(f"cluster: logs and data kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def create(self, via, name, dim, rf, timeout=15, **kw):
        """Create through node `via`, retried while that node does not see
        `rf` live nodes yet (a node reports SERVING once it has joined; the
        others learn of it through their etcd watch a moment later)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.client(via, timeout=30).create(name, dim, rf=rf, **kw)
            except grpc.RpcError as e:
                if ("replication_factor" not in (e.details() or "")
                        or time.monotonic() > deadline):
                    raise
                time.sleep(0.2)

    # --- clients ---------------------------------------------------------------
    def client(self, name, timeout=5.0):
        """A (cached) client of node `name`."""
        if name not in self._clients:
            self._clients[name] = qclient.Client(self.nodes[name].addr, self.stubs, timeout)
        return self._clients[name]

    def fresh_client(self, name, timeout=5.0):
        """A new client (own channel) of node `name`, for another thread."""
        return qclient.Client(self.nodes[name].addr, self.stubs, timeout)
