"""A restartable process inside a network namespace, logging to a file.

`NsProcess` runs ``ip netns exec NS CMD...`` (the exec replaces itself with
CMD, so the pid is the server's own), appends stdout and stderr to a log
file that survives restarts, and can be SIGKILLed, SIGTERMed and started
again with the same command.  `tail` returns the last lines of the log, for
failure messages.
"""

import os
import signal
import subprocess
import time


class NsProcess:
    def __init__(self, name, ns, cmd, log_path, env=None):
        self.name = name
        self.ns = ns
        self.cmd = list(cmd)
        self.log_path = log_path
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.proc.pid})")
        log = open(self.log_path, "ab")
        log.write(f"=== start {time.strftime('%H:%M:%S')}: {' '.join(self.cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *self.cmd],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=self.env)
        log.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL and reap."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM; SIGKILL after `timeout` s. Returns the exit code."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return None if self.proc is None else self.proc.returncode

    def restart(self):
        self.kill()
        return self.start()

    def wait_exit(self, timeout):
        """The exit code, or None when still running after `timeout` s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, n=25):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  {self.name}| {line}" for line in lines[-n:])
