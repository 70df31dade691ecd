"""``service.serve`` passing a second stop request on to the supervisor: when both requests are already there
as it starts stopping (two Ctrl-C within its half-second loop), the second must still reach the supervisor as a
second signal, not merge with the first (signals of one kind are not queued while one is pending)."""
import subprocess
import sys
import textwrap

from service.serve import stop_children

# A stand-in for the supervisor that handles its signals late, as a process busy in a Redis call or in
# ``time.sleep`` between its handler's runs does: stop signals are blocked for its first second, then it
# writes one line per handler call and exits.
LATE_HANDLER = textwrap.dedent("""
    import signal, sys, time
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    handled = []
    signal.signal(signal.SIGTERM, lambda signum, frame: handled.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: handled.append(signum))
    print("ready", flush=True)
    time.sleep(1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    time.sleep(0.2)
    print(len(handled), flush=True)
""")


def test_two_stop_requests_reach_a_slow_supervisor_as_two_signals():
    supervisor = subprocess.Popen([sys.executable, "-c", LATE_HANDLER], stdout=subprocess.PIPE, text=True,
                                  process_group=0)
    web = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
    try:
        assert supervisor.stdout.readline().strip() == "ready"
        stop_children(web, supervisor, lambda: 2, warm_seconds=20)
        assert supervisor.stdout.readline().strip() == "2", "the supervisor saw one stop request, not two"
        assert supervisor.wait(5) == 0
    finally:
        for process in (supervisor, web):
            if process.poll() is None:
                process.kill()
                process.wait()
