"""The harness itself, without quiver: the 3-member etcd cluster in its
namespaces keeps quorum with one member killed or partitioned, loses it
with two gone, recovers when they return, and teardown leaves no
namespace behind.  Writes go through etcd's v3 JSON gateway
(POST /v3/kv/put) to a member's own address.
"""

import base64
import json
import tempfile
import time
import urllib.request

import netlab
from etcd_cluster import EtcdCluster, _http
from outcome import Failed


def put(addr, key, value, timeout=2.0):
    """True when member `addr` commits key=value (needs quorum)."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(value.encode()).decode()}).encode()
    req = urllib.request.Request(f"http://{addr}:2379/v3/kv/put", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with _http.open(req, timeout=timeout) as r:
            return "header" in json.loads(r.read())
    except (OSError, ValueError):
        return False


def eventually(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise Failed(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def run(args, log=print):
    with tempfile.TemporaryDirectory(prefix="quiver-etcd-") as work, netlab.Lab(log) as lab:
        hub = lab.hub
        etcd = EtcdCluster(lab, work, log=log).start()
        t0 = time.monotonic()
        etcd.wait_healthy(timeout=30)
        log(f"selftest: 3 etcd members healthy in {time.monotonic() - t0:.1f} s at {etcd.url()}")
        a = etcd.addrs
        if not put(a["e1"], "k", "v1"):
            raise Failed("a put on e1 failed with all members up")

        etcd.kill("e1")
        eventually(lambda: put(a["e2"], "k", "v2"), 15, "a put with e1 killed (quorum of 2)")
        lab.partition("e2")
        eventually(lambda: not put(a["e3"], "k", "v3", timeout=1.0), 15,
                   "a put fails with e1 killed and e2 partitioned (no quorum)")
        if put(a["e2"], "k", "x", timeout=1.0):
            raise Failed("the client reached the partitioned member e2")
        lab.heal("e2")
        etcd.restart("e1")
        etcd.wait_healthy(timeout=30)
        eventually(lambda: put(a["e1"], "k", "v4"), 15, "a put after healing")
        log("selftest: quorum kept with one member down, lost with two, back after healing")
    left = [ns for ns in netlab.namespaces() if ns.startswith(hub[:-3])]
    if left:
        raise Failed(f"teardown left namespaces {left}")
    log("selftest: teardown removed every namespace")
    return {}
