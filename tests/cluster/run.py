#!/usr/bin/env python3
"""Runs cluster-test scenarios against a quiver binary (needs root, iproute2,
Debian's etcd-server and grpcio/grpcio-tools).

    sudo python3 tests/cluster/run.py --bin target/release/quiver [SCENARIO...]

Scenarios: selftest (etcd and the network alone, no quiver), chaos,
bad_input, rebalance (default: selftest chaos bad_input rebalance).  Exit code 0 when
every scenario passed, 1 when one failed, 77 when every scenario that ran
was skipped.  The last line reads `N passed, N failed, N skipped`.
"""

import argparse
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stubs as stubs_mod  # noqa: E402
from outcome import Skipped  # noqa: E402


SCENARIOS = ["selftest", "chaos", "bad_input", "rebalance"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/quiver", help="quiver binary")
    ap.add_argument("--stubs", help="directory of generated stubs (default: a temporary one)")
    ap.add_argument("--nodes", type=int, default=3, help="quiver nodes (3-5)")
    ap.add_argument("--duration", type=float, default=1.0,
                    help="scale of the chaos phases (1.0: about a minute of faults)")
    ap.add_argument("--faults", default="leader,follower,partition,etcd,restart",
                    help="the chaos faults to inject, in this order (default: all)")
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run.py: needs root (network namespaces)")
    for s in args.scenarios:
        if s not in SCENARIOS:
            sys.exit(f"run.py: unknown scenario {s!r} (one of {SCENARIOS})")
    args.bin = os.path.abspath(args.bin)
    stub_dir = args.stubs or tempfile.mkdtemp(prefix="quiver-stubs-")
    args.stubs = stubs_mod.load(stub_dir) if set(args.scenarios) - {"selftest"} else None

    passed = failed = skipped = 0
    for s in args.scenarios:
        mod = __import__(s)
        t0 = time.monotonic()
        print(f"=== {s}", flush=True)
        try:
            mod.run(args, log=lambda m: print(m, flush=True))
        except Skipped as e:
            skipped += 1
            print(f"--- {s}: SKIPPED ({e})", flush=True)
            continue
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            traceback.print_exc()
            print(f"--- {s}: FAILED after {time.monotonic() - t0:.0f} s: {e}", flush=True)
            continue
        passed += 1
        print(f"--- {s}: passed in {time.monotonic() - t0:.0f} s", flush=True)
    print(f"cluster: {passed} passed, {failed} failed, {skipped} skipped")
    if failed:
        return 1
    return 77 if skipped and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
