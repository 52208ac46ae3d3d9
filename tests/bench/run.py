"""Speed and memory benchmarks of guestops.vsphere against the guest-operations simulator.

Run with ``make bench``: it starts the simulator (``.ci/with-simulator``), which exports the
VMWARE_* variables this script connects with, and installs the peer (the PyPI ``ansible`` bundle
with community.vmware, pyvmomi and requests) into its own virtual environment, build/peer-venv.
Each benchmark has a target; the script prints a side-by-side table of the paired runs and a
table of the targets, writes ``build/bench.json`` and exits 1 when a target is missed.  Timings
on a busy machine vary, so the targets are set where a regression (not noise) misses them.

Paired benchmarks run their variants alternately, round after round (the order rotates each
round), so a slow phase of the machine hits both sides; each side's figure is its median, and a
ratio is the ratio of the two medians.  Every loop is bounded in count and in time.

Benchmarks:
- adhoc_guest_exec: ``ansible localhost -m guestops.vsphere.guest_exec`` of a trivial command,
  wall time and the number of vSphere calls it makes (the user-visible cost of one task).
- exit_detection: how long after a guest program ends the client notices (polling policy),
  for a 1-second and an 8-second program.
- transfer: upload and download of a large file through the guest client, with throughput and
  the growth of the client's peak memory (must stay bounded: the file is streamed).
- concurrency: 20 clients running a program at the same time, each with its own session.
- role_vs_adhoc: one run of the role guestops.vsphere.run_program (tests/bench/role_one.yml)
  against one ad-hoc guest_exec task, both ``echo hi``: wall times, their ratio, and the vSphere
  calls and Login calls of the role run (simulator counters, before and after).
- fleet_role_vs_peer / fleet_exec_vs_peer: playbooks/run_program.yml, and guest_exec
  (tests/bench/exec_fleet.yml), over 20 VMs with 20 forks, against community.vmware's
  vmware_vm_shell (wait_for_process) over the same VMs from the peer environment.  The 20 VMs
  (BENCH_VM00..19, tests/bench/inventory-20.yml) come from the simulator that ``make bench``
  started when it has them (GUESTSIM_ARGS), otherwise from a second simulator this script starts.
- output_memory: the role with a program that prints 50 MB against one that prints 5 MB: peak
  memory of ansible-playbook and all its child processes, and the growth between the two.
- peer_tools_info: community.vmware.vmware_guest_tools_info on the default VMs from the peer
  environment must succeed.
- vcenter_channel: guest_exec with transfer_mode=vcenter printing 1 MiB (base64 text of random
  bytes, which gzip shrinks by a quarter only, and seq, which it shrinks a lot), and a 1 MiB copy
  into the guest: vSphere calls per run, bytes of output per ListFilesInGuest call and per agent
  reply hostd assembled (the simulator's tools_replies), and throughput.
- connection_ping / connection_command: ``ansible -i INV vm0 -m ping`` and ``-m command -a 'echo hi'``
  through our connection plugin (guestops.vsphere.vmtools) against the same through community.vmware's
  vmware_tools connection from the peer environment, paired; wall time ratio and the vSphere calls of
  one run (ours counted until the watcher has logged the run's session out).  The VM is
  BENCH_IPHOST_VM0 (BENCH_CONNECTION_VM), on a host added to vCenter by its IP address: the peer uses
  transfer URLs as vCenter gives them and cannot resolve a host named DC0_H0 (community.vmware#1845).
"""
from __future__ import annotations

import argparse
import configparser
import glob
import io
import json
import os
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.environ.get('ANSIBLE_COLLECTIONS_PATH', os.path.join(ROOT, 'build', 'collections')).split(os.pathsep)[0]
sys.path.insert(0, COLLECTIONS)

# pylint: disable=wrong-import-position
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import VSphereSession  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._guest import GuestClient  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._exec import ProgramRequest, run_program  # noqa: E402

VM_NAME = os.environ.get('BENCH_VM', 'DC0_H0_VM0')
GUEST_USER = os.environ.get('VMWARE_GUEST_USERNAME', 'root')
GUEST_PASSWORD = os.environ.get('VMWARE_GUEST_PASSWORD', 'guestpass')
PEER_VENV = os.environ.get('BENCH_PEER_VENV', os.path.join(ROOT, 'build', 'peer-venv'))
FLEET_VMS = ['BENCH_VM%02d' % index for index in range(20)]
# The connection benchmark's VM: its host was added to vCenter by IP address, so that the peer, which
# uses transfer URLs as given, can reach it (tests/bench/inventory-20.yml).
CONNECTION_VM = os.environ.get('BENCH_CONNECTION_VM', 'BENCH_IPHOST_VM0')
FLEET_INVENTORY = os.path.join(HERE, 'inventory-20.yml')
MIB = 1024.0 * 1024.0
# Seconds the whole run should take at most (the fleet, run last, gets fewer rounds when late).
TOTAL_BUDGET = float(os.environ.get('BENCH_BUDGET', '540'))

# The peer's fleet playbook.  It is written at run time rather than kept as a file, because
# ansible-lint checks every playbook of the collection and the .venv it runs in has no
# community.vmware.  Same shape as tests/bench/exec_fleet.yml and playbooks/run_program.yml.
PEER_FLEET_PLAYBOOK = """---
- name: Prepare one in-memory host per virtual machine
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Add one in-memory host per VM
      ansible.builtin.add_host:
        name: "{{ item }}"
        groups: bench_targets
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
        bench_vm: "{{ item }}"
      loop: "{{ bench_vms }}"
      changed_when: false

- name: Run a program in every virtual machine with vmware_vm_shell
  hosts: bench_targets
  gather_facts: false
  tasks:
    - name: Run /bin/echo hi and wait for it
      community.vmware.vmware_vm_shell:
        vm_id: "{{ bench_vm }}"
        vm_username: root
        vm_password: guestpass
        vm_shell: /bin/echo
        vm_shell_args: hi
        wait_for_process: true
      delegate_to: localhost
"""


# The inventories of the connection benchmark (written at run time, like the peer playbook). Both
# discover the guest's Python. The simulator's guest home is not in this machine's passwd file, so
# Ansible's remote temporary directory is given as $HOME/... (the guest's shell expands it).
OUR_CONNECTION_INVENTORY = """---
all:
  hosts:
    vm0:
      ansible_host: %(vm)s
      ansible_connection: guestops.vsphere.vmtools
      ansible_user: root
      ansible_password: guestpass
      ansible_remote_tmp: $HOME/.ansible/tmp
"""
PEER_CONNECTION_INVENTORY = """---
all:
  hosts:
    vm0:
      ansible_connection: community.vmware.vmware_tools
      ansible_vmware_host: %(host)s
      ansible_vmware_port: %(port)s
      ansible_vmware_guest_path: DC0/vm/%(vm)s
      ansible_user: root
      ansible_password: guestpass
      ansible_remote_tmp: $HOME/.ansible/tmp
"""


def connection():
    """Connection parameters from the VMWARE_* environment (as AWX injects them)."""
    try:
        return dict(hostname=os.environ['VMWARE_HOST'], username=os.environ['VMWARE_USER'],
                    password=os.environ['VMWARE_PASSWORD'], port=int(os.environ.get('VMWARE_PORT', '443')),
                    validate_certs=os.environ.get('VMWARE_VALIDATE_CERTS', 'true').lower() in ('1', 'true', 'yes'))
    except KeyError as missing:
        sys.exit('%s is not set: run this through `make bench`, which starts the simulator' % missing)


def simulator_state(url=None):
    """The simulator's /guestsim/state (None against a real vCenter, where there is none)."""
    url = url or os.environ.get('GUESTSIM_STATE_URL')
    if not url:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, context=context, timeout=30) as response:  # nosec - loopback test server
        return json.load(response)


def simulator_calls(url=None):
    """vSphere calls per method the simulator has answered so far (None without a simulator)."""
    state = simulator_state(url)
    return None if state is None else dict(state.get('calls', {}))


def calls_between(before, after):
    """(total calls, Login calls) made between two simulator_calls() snapshots."""
    if before is None or after is None:
        return None, None
    diff = dict((name, after.get(name, 0) - before.get(name, 0)) for name in after)
    return sum(diff.values()), diff.get('Login', 0)


class Client:
    """A logged-in session and a guest client for the benchmark VM."""

    def __init__(self, transfer_mode='auto'):
        self.session = VSphereSession.from_params(connection()).connect()
        self.vm = self.session.find_vm(name=VM_NAME)
        self.guest = GuestClient(self.session, self.vm, GUEST_USER, GUEST_PASSWORD, transfer_mode=transfer_mode)

    def close(self):
        self.guest.close()
        self.session.close()


class Simulator:
    """A vSphere endpoint: the one `make bench` started, or one this script starts (start())."""

    def __init__(self, host, port, user, password, ca_file, state_url, process=None, state_dir=None):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.ca_file, self.state_url = ca_file, state_url
        self.process, self.state_dir = process, state_dir

    @classmethod
    def from_environment(cls):
        conn = connection()
        return cls(conn['hostname'], conn['port'], conn['username'], conn['password'],
                   os.environ.get('GUESTSIM_CA_FILE'), os.environ.get('GUESTSIM_STATE_URL'))

    @classmethod
    def start(cls, inventory, timeout=60):
        """A new simulator on a free loopback port with the inventory file; stop() ends it."""
        state_dir = tempfile.mkdtemp(prefix='guestsim-bench-')
        config = os.path.join(state_dir, 'cloud-config.ini')
        paths = [os.path.join(ROOT, 'tests')] + [p for p in [os.environ.get('PYTHONPATH')] if p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        log = open(os.path.join(state_dir, 'simulator.log'), 'wb')  # pylint: disable=consider-using-with
        try:
            process = subprocess.Popen(  # pylint: disable=consider-using-with
                [os.environ.get('GUESTSIM_PYTHON') or sys.executable, '-m', 'guestsim', '--port', '0',
                 '--state-dir', state_dir, '--inventory', inventory, '--write-cloud-config', config],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        simulator = cls(None, None, None, None, os.path.join(state_dir, 'ca.pem'), None, process, state_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(config) and os.path.getsize(config) > 0:
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        if not (os.path.exists(config) and os.path.getsize(config) > 0):
            text = simulator.log_tail()
            simulator.stop()
            raise RuntimeError('the fleet simulator did not start:\n%s' % text)
        parser = configparser.ConfigParser()
        parser.read(config)
        values = parser['DEFAULT']
        simulator.host, simulator.port = values['vcenter_hostname'], int(values['vcenter_port'])
        simulator.user, simulator.password = values['vcenter_username'], values['vcenter_password']
        simulator.state_url = values.get('guestsim_state_url')
        simulator.ca_file = values.get('vmware_ca_file') or simulator.ca_file
        return simulator

    def log_tail(self, lines=40):
        try:
            with open(os.path.join(self.state_dir, 'simulator.log'), encoding='utf-8', errors='replace') as handle:
                return ''.join(handle.readlines()[-lines:])
        except (OSError, TypeError):
            return ''

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def vm_names(self):
        state = simulator_state(self.state_url)
        return set(vm['name'] for vm in state.get('vms', [])) if state else set()

    def calls(self):
        return simulator_calls(self.state_url)

    def env(self, base):
        """base with the VMWARE_* variables of this endpoint; certificates verified against its CA."""
        env = dict(base, VMWARE_HOST=self.host, VMWARE_PORT=str(self.port), VMWARE_USER=self.user,
                   VMWARE_PASSWORD=self.password)
        if self.ca_file:
            env.update(SSL_CERT_FILE=self.ca_file, VMWARE_VALIDATE_CERTS='true')
        return env


class Runner:
    """Runs our ansible and the peer's, each with its own collections, in a scratch TMPDIR."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.bin = os.path.dirname(sys.executable)
        self.peer_bin = os.path.join(PEER_VENV, 'bin')
        self.peer_collections = os.path.join(scratch, 'peer-collections')  # empty: only the bundle's
        os.makedirs(self.peer_collections, exist_ok=True)
        self.peer_playbook = os.path.join(scratch, 'peer_fleet.yml')
        with open(self.peer_playbook, 'w', encoding='utf-8') as handle:
            handle.write(PEER_FLEET_PLAYBOOK)
        self.tmp = os.path.join(scratch, 'tmp')

    def base_env(self, peer):
        env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false',
                   ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', TMPDIR=self.tmp,
                   VMWARE_GUEST_USERNAME=GUEST_USER, VMWARE_GUEST_PASSWORD=GUEST_PASSWORD)
        env.pop('PYTHONPATH', None)
        if peer:
            # Only the collections of the peer's own ansible bundle (site-packages/ansible_collections).
            env.update(ANSIBLE_COLLECTIONS_PATH=self.peer_collections,
                       PATH=self.peer_bin + os.pathsep + env.get('PATH', ''))
        else:
            env.update(ANSIBLE_COLLECTIONS_PATH=os.environ.get('ANSIBLE_COLLECTIONS_PATH', COLLECTIONS))
        return env

    def command(self, tool, peer=False):
        return os.path.join(self.peer_bin if peer else self.bin, tool)

    def fresh_tmp(self):
        """An empty TMPDIR for the next run (the role's local copies of the output land there)."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)

    def run(self, argv, env, timeout, what):
        """Run argv; (seconds, output).  Raises with the output's tail when it fails."""
        self.fresh_tmp()
        log_path = os.path.join(self.scratch, 'last-run.log')
        with open(log_path, 'wb') as log:
            started = time.monotonic()
            try:
                done = subprocess.run(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError('%s did not finish within %d s' % (what, timeout)) from exc
            seconds = time.monotonic() - started
        with open(log_path, encoding='utf-8', errors='replace') as handle:
            output = handle.read()
        if done.returncode != 0:
            raise RuntimeError('%s failed (rc %d): %s\n%s' % (what, done.returncode, error_lines(output), tail(output)))
        return seconds, output


def error_lines(text, limit=3):
    """The first distinct error lines of an ansible run's output, joined."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(('fatal:', '[ERROR]', 'ERROR!')) or '| FAILED!' in line:
            if line not in found:
                found.append(line)
    return ' | '.join(found[:limit])[:600] or 'no error line'


def tail(text, lines=25):
    return '\n'.join(text.splitlines()[-lines:])


def result(name, value, unit, target, ok, **extra):
    row = dict(name=name, value=round(value, 3), unit=unit, target=target, ok=bool(ok))
    row.update(extra)
    return row


def failed_rows(names, exc):
    """Rows for benchmarks that could not run: missed, with the reason."""
    message = str(exc).strip()
    return [dict(name=name, value=None, unit='', target='-', ok=False, error=message[-2000:])
            for name in names]


def paired(variants, runs, budget, min_runs=1):
    """Run the variants (name, function) alternately, rotating the order each round.

    At most ``runs`` rounds; after ``min_runs`` rounds no new round starts when it would likely
    end after ``budget`` seconds.  A variant that fails drops out; the others go on.  Returns
    ({name: [what the function returned, ...]}, {name: error message}).
    """
    outcomes = dict((name, []) for name, dummy in variants)
    errors = {}
    started = time.monotonic()
    for index in range(runs):
        elapsed = time.monotonic() - started
        live = [variant for variant in variants if variant[0] not in errors]
        if not live or (index >= min_runs and elapsed + elapsed / index > budget):
            break
        shift = index % len(live)
        for name, function in live[shift:] + live[:shift]:
            try:
                outcomes[name].append(function())
            except Exception as exc:  # pylint: disable=broad-exception-caught
                errors[name] = str(exc)  # the others go on; this one is reported as failed
    return outcomes, errors


def require(errors, *names):
    """Raise the errors of those variants that failed."""
    failed = [name for name in names if name in errors]
    if failed:
        raise RuntimeError('\n'.join(errors[name] for name in failed))


def spread(values):
    return dict(median=round(statistics.median(values), 3), min=round(min(values), 3),
                max=round(max(values), 3), runs=len(values))


def bench_adhoc(runs=5):
    """Wall time and vSphere calls of one ad-hoc guest_exec task."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, VMWARE_GUEST_USERNAME=GUEST_USER,
               VMWARE_GUEST_PASSWORD=GUEST_PASSWORD, ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible'), 'localhost', '-m',
               'guestops.vsphere.guest_exec', '-a', 'name=%s cmd=true' % VM_NAME]
    times, calls = [], []
    for dummy in range(runs):
        before = simulator_calls()
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
        times.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError('ansible -m guest_exec failed:\n%s%s' % (done.stdout, done.stderr))
        total, dummy_logins = calls_between(before, simulator_calls())
        if total is not None:
            calls.append(total)
    median = statistics.median(times)
    rows = [result('adhoc_guest_exec_wall', median, 's', '<= 4.0', median <= 4.0,
                   runs=runs, min=round(min(times), 3), max=round(max(times), 3))]
    if calls:
        rows.append(result('adhoc_guest_exec_vsphere_calls', max(calls), 'calls', '<= 25', max(calls) <= 25))
    return rows


def bench_exit_detection(client):
    """Seconds between a program's end and the client noticing it."""
    rows = []
    for seconds, limit in ((1, 1.5), (8, 6.5)):
        request = ProgramRequest(argv=['/bin/sleep', str(seconds)], timeout=120)
        started = time.monotonic()
        outcome = run_program(client.guest, request)
        wall = time.monotonic() - started
        if outcome.get('rc') != 0:
            raise RuntimeError('sleep %s failed: %r' % (seconds, outcome))
        lag = wall - seconds
        rows.append(result('exit_detection_%ss_program' % seconds, lag, 's after exit', '<= %s' % limit,
                           lag <= limit, note='includes temp dir, start, output fetch and clean-up'))
    return rows


def bench_transfer(size_mib):
    """Run the transfer benchmark in a fresh process so that its peak memory is its own."""
    done = subprocess.run([sys.executable, __file__, '--transfer-worker', str(size_mib)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError('transfer worker failed:\n%s%s' % (done.stdout, done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1])


def transfer_worker(size_mib):
    """Upload and download size_mib MiB; print the rows as JSON (run in its own process)."""
    size = size_mib * 1024 * 1024
    client = Client()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as local:
            source = os.path.join(local, 'source.bin')
            with open(source, 'wb') as handle:
                block = os.urandom(1024 * 1024)
                for dummy in range(size_mib):
                    handle.write(block)
            baseline = peak_rss_mib()
            temp_dir = client.guest.make_temp_dir(prefix='bench-')
            try:
                target = temp_dir.rstrip('/') + '/payload.bin'
                started = time.monotonic()
                with open(source, 'rb') as handle:
                    client.guest.upload(handle, size, target)
                upload_s = time.monotonic() - started
                started = time.monotonic()
                with open(os.path.join(local, 'back.bin'), 'wb') as handle:
                    got, _digest = client.guest.download_to(target, handle)
                download_s = time.monotonic() - started
            finally:
                client.guest.delete(temp_dir)
            if got != size:
                raise RuntimeError('downloaded %d of %d bytes' % (got, size))
            growth = peak_rss_mib() - baseline
    finally:
        client.close()
    rows.append(result('upload_throughput', size_mib / upload_s, 'MiB/s', '>= 20', size_mib / upload_s >= 20,
                       size_mib=size_mib))
    rows.append(result('download_throughput', size_mib / download_s, 'MiB/s', '>= 20', size_mib / download_s >= 20,
                       size_mib=size_mib))
    rows.append(result('transfer_peak_memory_growth', growth, 'MiB', '<= 64', growth <= 64, size_mib=size_mib))
    print(json.dumps(rows))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_concurrency(clients=20):
    """clients sessions each run a program at once; all must succeed."""
    errors, outputs = [], {}

    def one(index):
        try:
            client = Client()
            try:
                outcome = run_program(client.guest, ProgramRequest(argv=['/bin/echo', 'client-%d' % index]))
                outputs[index] = outcome.get('stdout')
            finally:
                client.close()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            errors.append('%d: %s' % (index, exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    correct = sum(1 for i in range(clients) if outputs.get(i) == 'client-%d' % i)
    return [result('concurrent_clients_wall', wall, 's', '<= 20', wall <= 20 and correct == clients,
                   clients=clients, correct=correct, errors=errors[:3])]


# --- the role, the fleet and the peer: measured through ansible commands, as users run them ---

PAIRS = []  # side-by-side figures of the paired benchmarks, for the first table


def pair_row(benchmark, a_name, a_values, b_name, b_values, unit='s'):
    a_stats, b_stats = spread(a_values), spread(b_values)
    ratio = a_stats['median'] / b_stats['median'] if b_stats['median'] else float('inf')
    PAIRS.append(dict(benchmark=benchmark, a=a_name, a_stats=a_stats, b=b_name, b_stats=b_stats, unit=unit,
                      ratio=ratio))
    return ratio, a_stats, b_stats


def bench_role_vs_adhoc(runner, sim, runs=5, budget=150):
    """One run of the run_program role against one ad-hoc guest_exec task (both `echo hi`)."""
    env = sim.env(runner.base_env(peer=False))
    role = [runner.command('ansible-playbook'), os.path.join(HERE, 'role_one.yml')]
    adhoc = [runner.command('ansible'), 'localhost', '-m', 'guestops.vsphere.guest_exec',
             '-a', 'name=%s cmd="echo hi"' % VM_NAME]

    def measure(argv, what):
        def run():
            before = sim.calls()
            seconds, output = runner.run(argv, env, 300, what)
            total, logins = calls_between(before, sim.calls())
            if what.startswith('ansible -m') and '"hi"' not in output:
                raise RuntimeError('%s did not return the output "hi"\n%s' % (what, tail(output)))
            return dict(wall=seconds, calls=total, logins=logins)
        return run

    out, errors = paired([('role', measure(role, 'the run_program role (tests/bench/role_one.yml)')),
                          ('adhoc', measure(adhoc, 'ansible -m guestops.vsphere.guest_exec'))], runs, budget)
    require(errors, 'role')
    if 'adhoc' in errors:
        rows = failed_rows(['role_vs_adhoc_wall_ratio'], errors['adhoc'])
    else:
        ratio, role_stats, adhoc_stats = pair_row('role_vs_adhoc', 'role run_program', [o['wall'] for o in out['role']],
                                                  'ad-hoc guest_exec', [o['wall'] for o in out['adhoc']])
        rows = [result('role_vs_adhoc_wall_ratio', ratio, 'x', '<= 2.5', ratio <= 2.5,
                       role_s=role_stats, adhoc_s=adhoc_stats)]
    role_calls = [o['calls'] for o in out['role'] if o['calls'] is not None]
    if role_calls:
        adhoc_calls = [o['calls'] for o in out['adhoc'] if o['calls'] is not None]
        logins = [o['logins'] for o in out['role']]
        rows.append(result('role_vs_adhoc_role_vsphere_calls', max(role_calls), 'calls', '<= 30',
                           max(role_calls) <= 30, per_run=role_calls, adhoc_calls=adhoc_calls))
        rows.append(result('role_vs_adhoc_role_logins', max(logins), 'Logins', '<= 2', max(logins) <= 2,
                           per_run=logins, adhoc_logins=[o['logins'] for o in out['adhoc']]))
    return rows


def recap_ok(output, hosts):
    """Whether the PLAY RECAP lists every host with failed=0 and unreachable=0."""
    good = set()
    for line in output.splitlines():
        name, sep, counters = line.partition(' : ')
        if sep and 'failed=0' in counters.split() and 'unreachable=0' in counters.split():
            good.add(name.strip())
    return set(hosts) <= good


def bench_fleets(runner, sim, runs=5, budget=300):
    """playbooks/run_program.yml, guest_exec and the peer's vmware_vm_shell over 20 VMs, 20 forks."""
    ours, peer = sim.env(runner.base_env(peer=False)), sim.env(runner.base_env(peer=True))
    role_vars = dict(run_program_vms=FLEET_VMS, run_program_argv=['/bin/echo', 'hi'],
                     run_program_guest_username=GUEST_USER, run_program_guest_password=GUEST_PASSWORD)
    commands = dict(
        role=([runner.command('ansible-playbook'), '--forks', '20', os.path.join(ROOT, 'playbooks', 'run_program.yml'),
               '-e', json.dumps(role_vars)], ours, 'playbooks/run_program.yml over 20 VMs'),
        exec=([runner.command('ansible-playbook'), '--forks', '20', os.path.join(HERE, 'exec_fleet.yml'),
               '-e', json.dumps(dict(bench_vms=FLEET_VMS))], ours, 'guest_exec over 20 VMs (tests/bench/exec_fleet.yml)'),
        peer=([runner.command('ansible-playbook', peer=True), '--forks', '20', runner.peer_playbook,
               '-e', json.dumps(dict(bench_vms=FLEET_VMS))], peer, 'the peer vmware_vm_shell over 20 VMs'))

    def measure(name):
        argv, env, what = commands[name]

        def run():
            before = sim.calls()
            seconds, output = runner.run(argv, env, 600, what)
            total, logins = calls_between(before, sim.calls())
            if not recap_ok(output, FLEET_VMS):
                raise RuntimeError('%s: not every VM succeeded: %s\n%s' % (what, error_lines(output), tail(output)))
            return dict(wall=seconds, calls=total, logins=logins)
        return run

    out, errors = paired([(name, measure(name)) for name in ('role', 'exec', 'peer')], runs, budget)
    require(errors, 'peer')
    walls = dict((name, [o['wall'] for o in values]) for name, values in out.items())
    calls = dict((name, [o['calls'] for o in values]) for name, values in out.items())
    logins = dict((name, [o['logins'] for o in values]) for name, values in out.items())
    rows = []
    for name, label, limit in (('role', 'run_program.yml (20 VMs)', 1.5), ('exec', 'guest_exec (20 VMs)', 0.5)):
        benchmark = 'fleet_%s_vs_peer' % name
        if name in errors:
            rows += failed_rows([benchmark + '_ratio'], errors[name])
            continue
        ratio, ours, peer = pair_row(benchmark, label, walls[name], 'peer vmware_vm_shell', walls['peer'])
        extra = {name + '_s': ours, name + '_calls': calls[name], name + '_logins': logins[name]}
        rows.append(result(benchmark + '_ratio', ratio, 'x', '<= %s' % limit, ratio <= limit, peer_s=peer,
                           peer_calls=calls['peer'], peer_logins=logins['peer'], vms=len(FLEET_VMS), forks=20,
                           **extra))
    return rows


def bench_output_memory(runner, sim, runs=3, budget=150):
    """Peak memory of the controller (ansible-playbook and its children) for 5 and 50 MB of output."""
    env = sim.env(runner.base_env(peer=False))
    sizes = dict(small=5 * 1024 * 1024, large=50 * 1024 * 1024)

    def measure(size):
        program = "head -c %d /dev/zero | tr '\\0' x" % size
        argv = [sys.executable, os.path.abspath(__file__), '--measure-memory', os.path.join(runner.scratch, 'memory.log'),
                '--', runner.command('ansible-playbook'), os.path.join(HERE, 'role_one.yml'),
                '-e', json.dumps(dict(run_program_cmd=program, run_program_fetch_dir=runner.tmp))]

        def run():
            dummy, output = runner.run(argv, env, 300, 'the run_program role printing %d bytes' % size)
            figures = json.loads(output.strip().splitlines()[-1])
            fetched = glob.glob(os.path.join(runner.tmp, '**', 'stdout.txt'), recursive=True)
            figures['stdout_bytes'] = os.path.getsize(fetched[0]) if fetched else None
            if figures['stdout_bytes'] is not None and figures['stdout_bytes'] != size:
                raise RuntimeError('the role fetched %d of %d bytes of stdout' % (figures['stdout_bytes'], size))
            return figures
        return run

    out, errors = paired([(name, measure(size)) for name, size in sizes.items()], runs, budget)
    require(errors, 'small', 'large')
    tree = dict((name, [o['tree_peak_mib'] for o in values]) for name, values in out.items())
    single = dict((name, [o['max_process_mib'] for o in values]) for name, values in out.items())
    wall = dict((name, [o['wall'] for o in values]) for name, values in out.items())
    large, small = spread(tree['large']), spread(tree['small'])
    PAIRS.append(dict(benchmark='output_memory', a='role, 50 MB stdout', a_stats=large, b='role, 5 MB stdout',
                      b_stats=small, unit='MiB', ratio=large['median'] / small['median']))
    growth = large['median'] - small['median']
    found = [o['stdout_bytes'] for values in out.values() for o in values]
    return [result('output_memory_growth_5_to_50mb', growth, 'MiB', '<= 64', growth <= 64 and None not in found,
                   peak_50mb_mib=large, peak_5mb_mib=small,
                   largest_process_50mb_mib=spread(single['large']), largest_process_5mb_mib=spread(single['small']),
                   wall_50mb_s=spread(wall['large']), wall_5mb_s=spread(wall['small']),
                   note='peak of the summed RSS of ansible-playbook and all its descendants, sampled every 50 ms; '
                        'largest_process is getrusage(RUSAGE_CHILDREN).ru_maxrss'
                        + ('' if None not in found else '; the fetched stdout.txt was not found'))]


def bench_peer_tools_info(runner, sim):
    """community.vmware.vmware_guest_tools_info, unmodified, from the peer environment on the default VMs."""
    env = sim.env(runner.base_env(peer=True))
    vms = [VM_NAME, 'DC0_H0_VM_OFF', 'DC0_H0_VM_NOTOOLS']
    passed, errors, started = 0, [], time.monotonic()
    for vm in vms:
        argv = [runner.command('ansible', peer=True), 'localhost', '-m', 'community.vmware.vmware_guest_tools_info',
                '-a', 'name=%s' % vm]
        try:
            dummy, output = runner.run(argv, env, 300, 'the peer vmware_guest_tools_info on %s' % vm)
            if 'vm_tools_install_type' not in output:
                raise RuntimeError('%s: no vm_tools_install_type in the result' % vm)
            passed += 1
        except RuntimeError as exc:
            messages = [line.strip() for line in str(exc).splitlines() if '"msg"' in line or 'FAILED' in line]
            errors.append('%s: %s' % (vm, (messages[-1] if messages else str(exc))[-300:]))
    extra = dict(wall_s=round(time.monotonic() - started, 3), vms=vms)
    if errors:
        extra['error'] = ' | '.join(errors)
    return [result('peer_tools_info', passed, 'VMs', '== %d' % len(vms), passed == len(vms), **extra)]


def bench_connection(runner, sim, runs=5, budget=200):
    """ansible -m ping and -m command through our connection plugin and through community.vmware's vmware_tools."""
    values = dict(vm=CONNECTION_VM, host=sim.host, port=sim.port)
    inventories = {}
    for name, text in (('ours', OUR_CONNECTION_INVENTORY), ('peer', PEER_CONNECTION_INVENTORY)):
        inventories[name] = os.path.join(runner.scratch, 'connection-%s.yml' % name)
        with open(inventories[name], 'w', encoding='utf-8') as handle:
            handle.write(text % values)
    envs = dict(ours=sim.env(runner.base_env(peer=False)), peer=sim.env(runner.base_env(peer=True)))
    if sim.ca_file:
        envs['peer']['REQUESTS_CA_BUNDLE'] = sim.ca_file  # vmware_tools transfers with requests' own CA bundle
    modules = dict(ping=['-m', 'ansible.builtin.ping'], command=['-m', 'ansible.builtin.command', '-a', 'echo hi'])

    def sessions():
        state = simulator_state(sim.state_url)
        return None if state is None else len(state.get('sessions', []))

    def measure(side, module):
        argv = [runner.command('ansible', peer=side == 'peer'), '-i', inventories[side], 'vm0'] + modules[module]
        what = '%s -m %s through %s' % ('ansible', module, 'vmware_tools' if side == 'peer' else 'vmtools')

        def run():
            seconds, output = None, ''
            for attempt in range(3):
                before = sim.calls()
                try:
                    seconds, output = runner.run(argv, envs[side], 300, what)
                    break
                except RuntimeError as exc:
                    # vmware_tools rewrites every "443" of a transfer URL into the port, which breaks the
                    # URLs whose id or token holds "443" (community.vmware#2447): that run is repeated.
                    if side != 'peer' or attempt == 2 or not any(
                            text in str(exc) for text in ('Failed to fetch file', 'File transfer failed')):
                        raise
                    retries[module] += 1
            if '| SUCCESS' not in output and '| CHANGED' not in output:
                raise RuntimeError('%s did not succeed:\n%s' % (what, tail(output)))
            if module == 'command' and 'hi' not in output.split('>>', 1)[-1]:
                raise RuntimeError('%s did not print hi:\n%s' % (what, tail(output)))
            deadline = time.monotonic() + 5
            while side == 'ours' and sessions() and time.monotonic() < deadline:
                time.sleep(0.1)  # the watcher logs the run's session out once ansible has ended
            total, logins = calls_between(before, sim.calls())
            return dict(wall=seconds, calls=total, logins=logins)
        return run

    retries = dict(ping=0, command=0)
    rows = []
    for module in ('ping', 'command'):
        out, errors = paired([(side, measure(side, module)) for side in ('ours', 'peer')], runs, budget / 2)
        benchmark = 'connection_%s' % module
        if errors:
            rows += failed_rows([benchmark + '_wall_ratio'], ' | '.join('%s: %s' % item for item in errors.items()))
            continue
        ratio, ours, peer = pair_row(benchmark, 'vmtools -m %s' % module, [o['wall'] for o in out['ours']],
                                     'peer vmware_tools -m %s' % module, [o['wall'] for o in out['peer']])
        our_calls = [o['calls'] for o in out['ours'] if o['calls'] is not None]
        peer_calls = [o['calls'] for o in out['peer'] if o['calls'] is not None]
        rows.append(result(benchmark + '_wall_ratio', ratio, 'x', '<= 0.5', ratio <= 0.5, ours_s=ours, peer_s=peer,
                           ours_calls=our_calls, peer_calls=peer_calls, peer_runs_repeated=retries[module]))
        if module == 'command' and our_calls:
            rows.append(result('connection_command_vsphere_calls', max(our_calls), 'calls', '<= 30',
                               max(our_calls) <= 30, per_run=our_calls, peer_calls=peer_calls,
                               logins=[o['logins'] for o in out['ours']]))
    return rows


def peer_versions():
    """'ansible X, ansible-core Y, community.vmware Z' of the peer environment."""
    found = []
    site = glob.glob(os.path.join(PEER_VENV, 'lib', 'python*', 'site-packages'))
    for label, pattern in (('ansible', 'ansible-*.dist-info'), ('ansible-core', 'ansible_core-*.dist-info')):
        names = glob.glob(os.path.join(site[0], pattern)) if site else []
        if names:
            found.append('%s %s' % (label, os.path.basename(names[0])[:-len('.dist-info')].split('-')[-1]))
    try:
        with open(os.path.join(site[0], 'ansible_collections', 'community', 'vmware', 'MANIFEST.json'),
                  encoding='utf-8') as handle:
            found.append('community.vmware %s' % json.load(handle)['collection_info']['version'])
    except (IndexError, OSError, ValueError, KeyError):
        found.append('no community.vmware')
    return ', '.join(found)


def process_tree_rss(root):
    """(summed RSS in bytes of root's descendants, their number)."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rindex(b')') + 2:].split()
        children.setdefault(int(fields[1]), []).append((int(entry), int(fields[21])))
    total, count, queue = 0, 0, [root]
    while queue:
        for pid, pages in children.get(queue.pop(), ()):
            total += pages
            count += 1
            queue.append(pid)
    return total * os.sysconf('SC_PAGE_SIZE'), count


def measure_memory(log_path, argv):
    """Run argv (a fresh process, so RUSAGE_CHILDREN is argv's alone); print its memory as JSON."""
    peak = [0]
    with open(log_path, 'wb') as log:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], process_tree_rss(os.getpid())[0])
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            rc = process.wait(timeout=280)
        except subprocess.TimeoutExpired:
            process.kill()
            rc = process.wait()
        done.set()
        sampler.join(timeout=5)
        wall = time.monotonic() - started
    if rc != 0:
        with open(log_path, encoding='utf-8', errors='replace') as handle:
            sys.stdout.write(tail(handle.read()) + '\n')
        return rc
    print(json.dumps(dict(wall=round(wall, 3), tree_peak_mib=round(peak[0] / MIB, 1),
                          max_process_mib=round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1))))
    return 0


# --- the run ---------------------------------------------------------------------------------


def section(rows, names, function, *args):
    """Append function(*args)'s rows; when it fails, rows for names that say why, missed."""
    started = time.monotonic()
    try:
        rows += function(*args)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        rows += failed_rows(names, exc)
    sys.stderr.write('bench: %s done in %.0f s\n' % (function.__name__, time.monotonic() - started))
    sys.stderr.flush()


def print_tables(rows, notes):
    if PAIRS:
        print('Paired runs, alternating (median [min-max] of n runs); ratio = median / median')
        table = [('benchmark', 'A', 'median A', 'B', 'median B', 'ratio')]
        for pair in PAIRS:
            a, b = pair['a_stats'], pair['b_stats']
            table.append((pair['benchmark'], pair['a'],
                          '%.2f %s [%.2f-%.2f] n=%d' % (a['median'], pair['unit'], a['min'], a['max'], a['runs']),
                          pair['b'],
                          '%.2f %s [%.2f-%.2f] n=%d' % (b['median'], pair['unit'], b['min'], b['max'], b['runs']),
                          '%.2fx' % pair['ratio']))
        widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
        for line in table:
            print('  '.join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
        print()
    width = max(len(row['name']) for row in rows)
    for row in rows:
        value = '%10.3f' % row['value'] if row['value'] is not None else '%10s' % '-'
        print('%-*s %s %-13s target %-8s %s' % (width, row['name'], value, row['unit'], row['target'],
                                                'ok' if row['ok'] else 'MISSED'))
    for row in rows:
        if row.get('error'):
            print('  %s: %s' % (row['name'], row['error'].strip().splitlines()[0][:400]))
    for note in notes:
        print('note: %s' % note)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--size-mib', type=int, default=int(os.environ.get('BENCH_SIZE_MIB', '2048')),
                        help='size of the transfer benchmark file (default 2048)')
    parser.add_argument('--json', default=os.path.join(ROOT, 'build', 'bench.json'))
    parser.add_argument('--only', default=os.environ.get('BENCH_ONLY', ''),
                        help='comma-separated sections to run: adhoc, exit, transfer, concurrency, channel, role, '
                             'fleet, memory, peer, connection (default: all)')
    parser.add_argument('--transfer-worker', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--measure-memory', metavar='LOG', help=argparse.SUPPRESS)
    parser.add_argument('command', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_memory:
        command = args.command[1:] if args.command[:1] == ['--'] else args.command
        return measure_memory(args.measure_memory, command) if command else 2
    if os.environ.get('GUESTSIM_CA_FILE'):
        # Measure the path users should run: certificates verified, against the simulator's CA.
        os.environ.update(SSL_CERT_FILE=os.environ['GUESTSIM_CA_FILE'], VMWARE_VALIDATE_CERTS='true')
    if args.transfer_worker:
        transfer_worker(args.transfer_worker)
        return 0

    only = set(filter(None, args.only.split(',')))

    def wanted(name):
        return not only or name in only

    started = time.monotonic()
    rows, notes = [], []
    if wanted('adhoc'):
        section(rows, ['adhoc_guest_exec_wall'], bench_adhoc)
    if wanted('exit'):
        section(rows, ['exit_detection'], exit_detection_section)
    if wanted('transfer'):
        section(rows, ['transfer'], bench_transfer, args.size_mib)
    if wanted('concurrency'):
        section(rows, ['concurrent_clients_wall'], bench_concurrency)
    if wanted('channel'):
        section(rows, ['vcenter_channel'], bench_vcenter_channel)

    scratch = tempfile.mkdtemp(prefix='bench-', dir=os.path.join(ROOT, 'build'))
    holder, main_sim = [], None
    try:
        runner = Runner(scratch)
        main_sim = Simulator.from_environment()
        if main_sim.ca_file:
            notes.append('our modules and the peer verify certificates against the simulator CA (SSL_CERT_FILE, '
                         'VMWARE_VALIDATE_CERTS=true; community.vmware loads it through load_default_certs)')
        peer_ready = os.path.exists(runner.command('ansible-playbook', peer=True))
        if peer_ready:
            notes.append('peer: %s from %s, with only its own collections' % (peer_versions(), PEER_VENV))
        else:
            notes.append('no peer environment at %s: run `make peer` (or `make bench`, which creates it)' % PEER_VENV)
        if wanted('role'):
            section(rows, ['role_vs_adhoc_wall_ratio'], bench_role_vs_adhoc, runner, main_sim)
        if wanted('memory'):
            section(rows, ['output_memory_growth_5_to_50mb'], bench_output_memory, runner, main_sim)
        if wanted('peer'):
            if peer_ready:
                section(rows, ['peer_tools_info'], bench_peer_tools_info, runner, main_sim)
            else:
                rows += failed_rows(['peer_tools_info'], 'no peer environment')

        def bench_simulator():
            """The simulator with BENCH_VM00..19 and the connection VM: the one `make bench` started
            when it has them, otherwise a second one this script starts (once)."""
            if not holder:
                if set(FLEET_VMS + [CONNECTION_VM]) <= main_sim.vm_names():
                    holder.append(main_sim)
                    notes.append('fleet and connection: the VMs of the simulator `make bench` started')
                else:
                    holder.append(Simulator.start(FLEET_INVENTORY))
                    notes.append('fleet and connection: a second simulator with %s (the first one lacks '
                                 'its VMs)' % os.path.relpath(FLEET_INVENTORY, ROOT))
            return holder[0]

        if wanted('connection'):
            names = ['connection_ping_wall_ratio', 'connection_command_wall_ratio']
            if peer_ready:
                try:
                    section(rows, names, bench_connection, runner, bench_simulator())
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    rows += failed_rows(names, exc)
            else:
                rows += failed_rows(names, 'no peer environment')
        if wanted('fleet'):
            names = ['fleet_role_vs_peer_ratio', 'fleet_exec_vs_peer_ratio']
            if not peer_ready:
                rows += failed_rows(names, 'no peer environment')
            else:
                try:
                    fleet_sim = bench_simulator()
                    # The fleet runs last and gets what is left of the run's time budget.
                    budget = max(0.0, min(300.0, TOTAL_BUDGET - (time.monotonic() - started)))
                    section(rows, names, bench_fleets, runner, fleet_sim, 5, budget)
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    rows += failed_rows(names, exc)
    finally:
        if holder and holder[0] is not main_sim:
            holder[0].stop()
        shutil.rmtree(scratch, ignore_errors=True)

    notes.append('total bench time %.0f s on %d CPU(s)' % (time.monotonic() - started, os.cpu_count() or 0))
    print_tables(rows, notes)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, 'w', encoding='utf-8') as handle:
        json.dump(rows, handle, indent=2)
    missed = [row['name'] for row in rows if not row['ok']]
    if missed:
        print('targets missed: %s' % ', '.join(missed))
        return 1
    print('all %d benchmark targets met (details in %s)' % (len(rows), args.json))
    return 0


def bench_vcenter_channel(runs=3):
    """1 MiB of output and a 1 MiB copy through the vCenter-only channel: calls, payload per call, speed."""
    rows = []
    size = 1024 * 1024
    outputs = (('random_base64', 'head -c %d /dev/urandom | base64 -w 0 | head -c %d' % (size, size)),
               ('seq', 'seq 1 200000 | head -c %d' % size))
    for label, command in outputs:
        walls, totals, listings, replies = [], [], [], []
        for dummy in range(runs):
            client = Client(transfer_mode='vcenter')
            try:
                before, state_before = simulator_calls(), simulator_state()
                started = time.monotonic()
                outcome = run_program(client.guest, ProgramRequest(cmd=command, timeout=300, output_limit=2 * size))
                walls.append(time.monotonic() - started)
                after, state_after = simulator_calls(), simulator_state()
            finally:
                client.close()
            if outcome.get('rc') != 0 or len(outcome.get('stdout', '')) != size:
                raise RuntimeError('%s: rc %s, %d bytes of output' % (label, outcome.get('rc'),
                                                                      len(outcome.get('stdout', ''))))
            if before is not None:
                totals.append(calls_between(before, after)[0])
                listings.append(after.get('ListFilesInGuest', 0) - before.get('ListFilesInGuest', 0))
                replies.append(state_after['tools_replies'].get('ListFilesInGuest', 0)
                               - state_before['tools_replies'].get('ListFilesInGuest', 0))
        wall = statistics.median(walls)
        rows.append(result('vcenter_channel_1mib_%s_throughput' % label, size / wall / 1e6, 'MB/s', '>= 0.2',
                           size / wall / 1e6 >= 0.2, wall_s=[round(w, 2) for w in walls]))
        if totals:
            rows.append(result('vcenter_channel_1mib_%s_vsphere_calls' % label, max(totals), 'calls', '<= 60',
                               max(totals) <= 60, list_files_calls=listings, agent_replies=replies))
            per_call = size / max(listings) / 1000.0
            rows.append(result('vcenter_channel_1mib_%s_output_per_list_files_call' % label, per_call, 'KB',
                               '>= 30', per_call >= 30, output_per_agent_reply_kb=round(size / max(replies) / 1000.0, 1)))
    # Into the guest: 1 MiB of random bytes (incompressible), checked in the guest by SHA-256.
    data = os.urandom(size)
    client = Client(transfer_mode='vcenter')
    try:
        directory = client.guest.make_temp_dir(prefix='bench-channel-')
        before = simulator_calls()
        started = time.monotonic()
        client.guest.upload(io.BytesIO(data), size, directory + '/upload.bin')
        wall = time.monotonic() - started
        total = calls_between(before, simulator_calls())[0]
        client.guest.delete(directory)
    finally:
        client.close()
    rows.append(result('vcenter_channel_1mib_upload_throughput', size / wall / 1e6, 'MB/s', '>= 0.1',
                       size / wall / 1e6 >= 0.1, wall_s=round(wall, 2), vsphere_calls=total))
    return rows


def exit_detection_section():
    client = Client()
    try:
        return bench_exit_detection(client)
    finally:
        client.close()


if __name__ == '__main__':
    sys.exit(main())
