#!/usr/bin/env python3
"""A stand-in for systemd's socket unit, for tests: holds one listening TCP
socket for its whole life and runs a command with it the way systemd passes
sockets (descriptor 3, LISTEN_FDS=1, LISTEN_PID = the command's own pid,
LISTEN_FDNAMES when --fdname is given), so the command can be stopped and
started again while the socket stays open: connections that arrive in between
wait in the kernel's backlog instead of being refused.

Usage: socket-holder.py [--host 127.0.0.1] [--port 0] [--fdname NAME] -- COMMAND...

It prints one JSON line per event on stdout (the command shares that stdout):
  {"holder": "listening", "port": N}
  {"holder": "started", "pid": N}
  {"holder": "exited", "pid": N, "code": N}
  {"holder": "error", "message": "..."}
and reads commands, one per line, on stdin:
  start     start the command (when none runs)
  stop      SIGTERM the command and wait for it to exit (the socket stays open)
  restart   stop, then start
  quit      stop, close the socket and exit (also on end of input or SIGTERM)
"""

import json
import os
import signal
import socket
import sys

child_pid = None


def say(event, **fields):
    sys.stdout.write(json.dumps({"holder": event, **fields}) + "\n")
    sys.stdout.flush()


def start(listener, command, fdname):
    global child_pid
    if child_pid is not None:
        say("error", message="already running")
        return
    pid = os.fork()
    if pid == 0:
        try:
            if listener.fileno() != 3:
                os.dup2(listener.fileno(), 3)
            os.set_inheritable(3, True)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())
            if fdname is not None:
                os.environ["LISTEN_FDNAMES"] = fdname
            else:
                os.environ.pop("LISTEN_FDNAMES", None)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.execvp(command[0], command)
        except BaseException as error:  # exec failed: report and leave without running the parent's cleanup
            os.write(2, ("socket-holder: cannot run %r: %s\n" % (command, error)).encode())
            os._exit(127)
    child_pid = pid
    say("started", pid=pid)


def stop():
    global child_pid
    if child_pid is None:
        return
    pid = child_pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, status = os.waitpid(pid, 0)
    child_pid = None
    say("exited", pid=pid, code=os.waitstatus_to_exitcode(status))


def on_sigterm(_signum, _frame):
    raise SystemExit(0)


def main():
    args = sys.argv[1:]
    host, port, fdname = "127.0.0.1", 0, None
    while args and args[0] != "--":
        option = args.pop(0)
        if option == "--host":
            host = args.pop(0)
        elif option == "--port":
            port = int(args.pop(0))
        elif option == "--fdname":
            fdname = args.pop(0)
        else:
            sys.exit("socket-holder: unknown option %s" % option)
    if not args or args[0] != "--" or len(args) < 2:
        sys.exit("usage: socket-holder.py [--host H] [--port P] [--fdname NAME] -- COMMAND...")
    command = args[1:]

    signal.signal(signal.SIGTERM, on_sigterm)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(511)
    say("listening", port=listener.getsockname()[1])
    try:
        for line in sys.stdin:
            word = line.strip()
            if word == "start":
                start(listener, command, fdname)
            elif word == "stop":
                stop()
            elif word == "restart":
                stop()
                start(listener, command, fdname)
            elif word == "quit":
                break
            elif word:
                say("error", message="unknown command %s" % word)
    finally:
        stop()
        listener.close()


if __name__ == "__main__":
    main()
