#!/usr/bin/env python3
"""Drive a program through a pseudo-terminal, step by step (used by
tests/repl_spec.lua).

    python3 tests/pty_drive.py STEPS -- program [args...]

STEPS is a file, one step a line (text takes \\n, \\r, \\x03... escapes):
    send TEXT      type TEXT on the terminal
    expect TEXT    wait until TEXT shows in the output after what earlier
                   steps matched ("\\r" is dropped from the output first)
    timeout SECS   time limit of the next expect/exit steps (default 10: generous, for a loaded machine)
    exit STATUS    wait for the program to end with STATUS (or "signal N")
    sleeping       wait until the program sleeps in a system call (state S
                   in /proc/PID/stat), e.g. a socket wait after its output
    screen TEXT    wait until the screen (the output drawn on an 80-column
                   terminal: \\r, \\n, \\b, erase and cursor moves applied)
                   ends with the lines of TEXT up to the cursor's line, the
                   cursor just after TEXT (trailing spaces of the lines
                   drawn are ignored)
    capture NAME RE  wait until the regular expression RE matches the output
                   after what earlier steps matched; its group 1 becomes
                   the environment variable NAME of later shell steps
    shell CMD      run CMD with /bin/sh (time limit as expect); it must
                   exit 0, e.g. a client of a server the program runs

Prints "ok" and exits 0 when every step passed; else prints the failing
step and the transcript and exits 1.  Every wait has a time limit, and the
program is killed if still running at the end.
"""
import codecs
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time


class Screen:
    """What a terminal 80 columns wide shows for a stream of output: the
    lines (no scrolling: the list grows) and the cursor."""
    WIDTH = 80
    CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")

    def __init__(self, text):
        self.lines, self.row, self.col = [[]], 0, 0
        i = 0
        while i < len(text):
            m = self.CSI.match(text, i)
            if m:
                self.control(m.group(1), m.group(2))
                i = m.end()
                continue
            self.put(text[i])
            i += 1

    def line(self):
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def put(self, ch):
        if ch == "\r":
            self.col = 0
        elif ch == "\n":
            self.row += 1
        elif ch == "\b":
            self.col = max(0, self.col - 1)
        elif ch == "\t":
            self.col = min(self.WIDTH - 1, (self.col // 8 + 1) * 8)
        elif ch == "\x1b" or ch < " ":
            pass                      # bell, a lone ESC: nothing drawn
        else:
            if self.col >= self.WIDTH:  # the pending wrap of a full line
                self.row, self.col = self.row + 1, 0
            line = self.line()
            line.extend(" " * (self.col + 1 - len(line)))
            line[self.col] = ch
            self.col += 1

    def control(self, params, final):
        n = int(params) if params.isdigit() else 1
        if final == "K":              # erase to the end of the line
            del self.line()[self.col:]
        elif final == "C":
            self.col = min(self.WIDTH - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self.row += n

    def text(self):
        """The lines up to the cursor's, trailing spaces removed."""
        self.line()
        return ["".join(l).rstrip() for l in self.lines[:self.row + 1]]

    def ends_with(self, want):
        want_lines = want.split("\n")
        shown = self.text()
        return (len(shown) >= len(want_lines)
                and shown[-len(want_lines):] == [w.rstrip() for w in want_lines]
                and self.col == len(want_lines[-1]))


class Session:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.out = ""      # everything read, without "\r"
        self.raw = ""      # everything read, as the terminal got it
        self.pos = 0       # where the next expect starts looking
        self.status = None

    def read_some(self, deadline):
        """Read what is available before deadline; False at end of output."""
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        ready, _, _ = select.select([self.fd], [], [], left)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:    # EIO: the program closed the terminal
            data = b""
        if not data:
            return False
        self.raw += data.decode("utf-8", "replace")
        self.out += data.decode("utf-8", "replace").replace("\r", "")
        return True

    def expect(self, text, limit):
        deadline = time.monotonic() + limit
        while True:
            i = self.out.find(text, self.pos)
            if i >= 0:
                self.pos = i + len(text)
                return None
            if time.monotonic() >= deadline:
                return "timed out after %gs" % limit
            if not self.read_some(deadline):
                return "output ended"

    def screen(self, want, limit):
        deadline = time.monotonic() + limit
        while True:
            if Screen(self.raw).ends_with(want):
                return None
            if time.monotonic() >= deadline:
                return "timed out after %gs; the screen:\n%s" % (
                    limit, "\n".join(Screen(self.raw).text()))
            if not self.read_some(deadline):
                return "output ended"

    def capture(self, pattern, limit):
        """Like expect, with a regular expression; returns (error, group 1)."""
        deadline = time.monotonic() + limit
        while True:
            m = re.compile(pattern).search(self.out, self.pos)
            if m:
                self.pos = m.end()
                return None, m.group(1)
            if time.monotonic() >= deadline:
                return "timed out after %gs" % limit, None
            if not self.read_some(deadline):
                return "output ended", None

    def state(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rpartition(")")[2].split()[0]
        except OSError:
            return None

    def wait_state(self, want, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.state() == want:
                return None
            self.read_some(min(deadline, time.monotonic() + 0.01))
        return "still %s after %gs" % (self.state(), limit)

    def wait_exit(self, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = st
                return (("signal %d" % os.WTERMSIG(st)) if os.WIFSIGNALED(st)
                        else str(os.WEXITSTATUS(st)))
            self.read_some(min(deadline, time.monotonic() + 0.1))
        return None

    def close(self):
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def shell(cmd, env, limit):
    """Run cmd; None when it exits 0 within limit, else what went wrong."""
    try:
        p = subprocess.run(cmd, shell=True, env=env, timeout=limit,
                           stdin=subprocess.DEVNULL, capture_output=True)
    except subprocess.TimeoutExpired:
        return "timed out after %gs" % limit
    if p.returncode != 0:
        return "status %d: %s%s" % (p.returncode, p.stdout.decode(errors="replace"),
                                    p.stderr.decode(errors="replace"))
    return None


def run(steps, session):
    limit = 10.0
    env = dict(os.environ)
    for n, line in enumerate(steps, 1):
        verb, _, arg = line.rstrip("\n").partition(" ")
        text = (codecs.decode(arg, "unicode_escape") if verb in ("send", "expect", "screen")
                else arg)
        if verb == "send":
            os.write(session.fd, text.encode())
        elif verb == "expect":
            err = session.expect(text, limit)
            if err:
                return "step %d (expect %r): %s" % (n, arg, err)
        elif verb == "screen":
            err = session.screen(text, limit)
            if err:
                return "step %d (screen %r): %s" % (n, arg, err)
        elif verb == "sleeping":
            err = session.wait_state("S", limit)
            if err:
                return "step %d (sleeping): %s" % (n, err)
        elif verb == "capture":
            name, _, pattern = arg.partition(" ")
            err, env[name] = session.capture(pattern, limit)
            if err:
                return "step %d (capture %r): %s" % (n, arg, err)
        elif verb == "shell":
            err = shell(arg, env, limit)
            if err:
                return "step %d (shell %r): %s" % (n, arg, err)
        elif verb == "timeout":
            limit = float(arg)
        elif verb == "exit":
            got = session.wait_exit(limit)
            if got != arg:
                return "step %d (exit %s): got %s" % (n, arg, got or "no exit")
        elif verb:
            return "step %d: unknown step %r" % (n, verb)
    return None


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: pty_drive.py STEPS -- program [args...]")
    with open(sys.argv[1]) as f:
        steps = f.readlines()
    session = Session(sys.argv[3:])
    try:
        err = run(steps, session)
    finally:
        session.close()
    if err:
        print("FAIL: " + err)
        print("--- transcript ---")
        print(session.out)
        sys.exit(1)
    print("ok")
    if os.environ.get("PTY_DRIVE_VERBOSE"):
        print(session.out)


if __name__ == "__main__":
    main()
