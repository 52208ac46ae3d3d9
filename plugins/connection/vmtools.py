# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: vmtools
short_description: Run Ansible tasks inside vSphere VMs through VMware Tools
version_added: 0.1.0
description:
  - Runs any Ansible module inside a Linux guest of a vSphere VM through the Guest Operations API of vCenter or ESXi
    (VMware Tools). No network path into the guest, no SSH and no agent besides VMware Tools are needed.
  - Every command runs through the collection's guest engine, the same as M(guestops.vsphere.guest_exec) uses, in a
    private temporary directory that is removed afterwards, with its output, exit code and a guest-side deadline; the
    end of a command is noticed by polling, fast at first.
  - Pipelining is on by default, so a module reaches the guest's Python interpreter as the standard input of one
    program, without a temporary directory of Ansible's own.
  - Privilege escalation (C(become)) works through the shell plugin as with SSH, for example with C(sudo); the become
    password is given to the program only when the become method asks for it.
  - Within one run of C(ansible-playbook) or C(ansible), a host's tasks share one vCenter session and the VM found by
    the first task (see O(keep_session)). Every session is logged out when the run ends.
  - Windows guests are refused for now; use M(guestops.vsphere.guest_exec) for them.
author:
  - guestops.vsphere maintainers (@guestops)
requirements:
  - pyvmomi
  - requests
options:
  remote_addr:
    description:
      - The name of the VM in vCenter. It must be unique, or be narrowed down with O(datacenter) and O(folder).
      - Ignored when O(vm_uuid), O(vm_moid) or O(vm_path) is set.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_vmtools_vm_name
  vm_uuid:
    description:
      - The BIOS uuid of the VM (C(config.uuid)), instead of its name.
      - C(ansible_vmware_guest_uuid) is the variable of community.vmware's C(vmware_tools) connection.
    type: str
    vars:
      - name: ansible_vmware_guest_uuid
      - name: ansible_vmtools_vm_uuid
  vm_moid:
    description:
      - The managed object id of the VM (for example V(vm-42)), instead of its name.
    type: str
    vars:
      - name: ansible_vmtools_vm_moid
  vm_path:
    description:
      - The inventory path of the VM, V(DATACENTER/vm/FOLDER/NAME), as community.vmware's C(vmware_tools) connection
        takes it.
      - The last part is the VM's name, the first the datacenter and the rest its folder.
    type: str
    vars:
      - name: ansible_vmware_guest_path
  datacenter:
    description:
      - The datacenter of the VM, to tell apart VMs with the same name.
    type: str
    vars:
      - name: ansible_vmtools_datacenter
  folder:
    description:
      - The VM folder of the VM, to tell apart VMs with the same name (V(/DC0/vm/F0), V(F0) or V(vm/F0)).
    type: str
    vars:
      - name: ansible_vmtools_folder
  remote_user:
    description:
      - The user to log in as inside the guest (the guest login of the Guest Operations API).
    type: str
    required: true
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
      - name: ansible_vmware_tools_user
    keyword:
      - name: remote_user
  password:
    description:
      - The password of O(remote_user) inside the guest.
    type: str
    required: true
    vars:
      - name: ansible_password
      - name: ansible_vmware_tools_password
  vmware_host:
    description:
      - The vCenter or ESXi server that runs the guest operations.
    type: str
    required: true
    env:
      - name: VMWARE_HOST
      - name: VI_SERVER
    vars:
      - name: ansible_vmware_host
  vmware_user:
    description:
      - The user name for vCenter or ESXi. It needs the Guest operations privileges on the VM.
    type: str
    required: true
    env:
      - name: VMWARE_USER
      - name: VI_USERNAME
    vars:
      - name: ansible_vmware_user
  vmware_password:
    description:
      - The password of O(vmware_user). It is never written anywhere or shown.
    type: str
    required: true
    env:
      - name: VMWARE_PASSWORD
      - name: VI_PASSWORD
    vars:
      - name: ansible_vmware_password
  vmware_port:
    description:
      - The HTTPS port of vCenter or ESXi.
    type: int
    default: 443
    env:
      - name: VMWARE_PORT
      - name: VI_PORTNUMBER
    vars:
      - name: ansible_vmware_port
  validate_certs:
    description:
      - Verify the TLS certificates of vCenter/ESXi and of the ESXi host that file transfers go to.
      - Set to V(false) only for labs with self-signed certificates.
    type: bool
    default: true
    env:
      - name: VMWARE_VALIDATE_CERTS
    vars:
      - name: ansible_vmware_validate_certs
  transfer_host:
    description:
      - Host (and optionally port) to use for file transfers instead of the ESXi host named by vSphere, for a host
        that cannot be resolved from the controller.
    type: str
    vars:
      - name: ansible_vmtools_transfer_host
  transfer_validate:
    description:
      - How the TLS certificate of the ESXi host is checked for file transfers, as in M(guestops.vsphere.guest_exec).
      - V(ca) verifies it against the same trust as vCenter's certificate, following O(validate_certs).
      - V(thumbprint) accepts exactly the certificate that vCenter reports for the VM's host, for ESXi hosts with
        self-signed certificates behind a trusted vCenter.
      - V(none) does not check the ESXi host's certificate (labs only).
    type: str
    choices: [ca, thumbprint, none]
    default: ca
    vars:
      - name: ansible_vmtools_transfer_validate
  transfer_mode:
    description:
      - How modules, files and output travel between the controller and the guest, as in
        M(guestops.vsphere.guest_exec).
      - V(esxi) uses the HTTPS transfer URLs of the VM's ESXi host; the controller must reach it on port 443.
      - V(vcenter) sends everything through vCenter alone (for sites where only vCenter is routed); slower, and
        capped at 1 MiB for a file copied in and 4 MiB for a file fetched.
      - V(auto) uses the ESXi host and switches to vCenter for the rest of the task when that host cannot be
        reached.
    type: str
    choices: [auto, esxi, vcenter]
    default: auto
    env:
      - name: VMWARE_GUEST_TRANSFER_MODE
    vars:
      - name: ansible_vmtools_transfer_mode
  request_timeout:
    description:
      - Seconds to wait for any single answer from vCenter/ESXi.
    type: int
    default: 60
    vars:
      - name: ansible_vmtools_request_timeout
  retry_timeout:
    description:
      - Seconds to keep retrying a vSphere call while it fails transiently (VMware Tools restarting, the VM busy,
        vCenter restarting). V(0) disables retries.
    type: int
    default: 90
    vars:
      - name: ansible_vmtools_retry_timeout
  command_timeout:
    description:
      - Seconds a single command (a module run, a C(raw) command) may take. When it is over, the command and every
        process it started are ended in the guest and the task fails.
      - The guest also ends the command by itself a few seconds later, so nothing keeps running when the controller
        is gone.
      - The C(timeout) task keyword ends a task earlier; the command is then ended in the guest as well.
    type: int
    default: 3600
    vars:
      - name: ansible_vmtools_command_timeout
  keep_session:
    description:
      - Keep the vCenter session, the VM found and the guest operation managers between the tasks of one run for
        the same host and settings.
      - The session is kept in a file readable only by its owner under C(~/.ansible/guestops_vsphere_sessions), named
        by a digest of the connection settings (passwords included), the host and the Ansible process of the run,
        so no other run or setting can use it. A small watcher process started by the first task logs the session
        out when that Ansible process ends, also when it is killed; a later run ends any session left behind, and
        vCenter ends idle sessions after 30 minutes.
      - With V(false) every task logs in and out.
    type: bool
    default: true
    vars:
      - name: ansible_vmtools_keep_session
  pipelining:
    description:
      - Send a module to the guest's interpreter as its standard input instead of copying it into a temporary
        directory of Ansible's first.
    type: bool
    default: true
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    env:
      - name: ANSIBLE_PIPELINING
    vars:
      - name: ansible_pipelining
      - name: ansible_vmtools_pipelining
notes:
  - The VM must be powered on with VMware Tools running; file transfers go over HTTPS to the ESXi host of the VM
    (see O(transfer_host)), or through vCenter alone (see O(transfer_mode)).
  - Commands run with the environment VMware Tools gives guest programs (no login shell), start in the guest user's
    home directory and have E(TMPDIR) set to their private temporary directory, which is removed afterwards.
  - Only Linux (POSIX) guests are supported. A Windows VM or the C(powershell) shell type is refused with a message.
  - A become method must accept its password on standard input (C(sudo) does with its C(-S) flag, which Ansible's
    C(sudo) plugin passes), or need none.
seealso:
  - module: guestops.vsphere.guest_exec
  - name: Connection plugin guide
    description: Inventory examples, AWX, and what moves over from community.vmware's vmware_tools connection.
    link: https://github.com/guestops/vsphere/blob/main/docs/docsite/rst/guide_connection.rst
"""

EXAMPLES = r"""
# inventory.yml: the VM names are the host names; vCenter comes from VMWARE_HOST, VMWARE_USER,
# VMWARE_PASSWORD (or an AWX VMware credential), the guest login from the machine credential.
# all:
#   children:
#     vsphere_vms:
#       hosts:
#         web01:
#         db01:
#           ansible_host: db01.prod        # the VM's name in vCenter when it differs
#       vars:
#         ansible_connection: guestops.vsphere.vmtools
#         ansible_user: root
#         ansible_password: "{{ vault_guest_password }}"

# Then run any module inside the guests:
# ansible -i inventory.yml vsphere_vms -m ansible.builtin.setup

- name: Configure the guests through VMware Tools
  hosts: vsphere_vms
  gather_facts: true
  tasks:
    - name: Install the configuration
      ansible.builtin.template:
        src: app.conf.j2
        dest: /etc/app.conf
        mode: "0644"
      become: true
"""

import io
import json
import os
import posixpath
import subprocess
import sys

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

try:
    from ansible_collections.guestops.vsphere.plugins.module_utils import _paths, _session_cache
    from ansible_collections.guestops.vsphere.plugins.module_utils._exec import (
        WAIT_RETENTION,
        ProgramRequest,
        prepare_job,
        remove_job,
        start_job,
        wait_for_rc_file,
    )
    from ansible_collections.guestops.vsphere.plugins.module_utils._command_line import parse_rc, posix_quote
    from ansible_collections.guestops.vsphere.plugins.module_utils._files import move_empty_file_into_place
    from ansible_collections.guestops.vsphere.plugins.module_utils._faults import (
        Interrupted,
        VSphereError,
        fault_is,
        interruptible,
    )
    from ansible_collections.guestops.vsphere.plugins.module_utils._guest import HAS_REQUESTS, GuestClient, WaitTimeout
    from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import (
        HAS_PYVMOMI,
        VirtualMachine,
        VSphereSession,
        vim,
    )
    IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported when the connection is used
    IMPORT_ERROR = exc
    HAS_PYVMOMI = HAS_REQUESTS = False

display = Display()

# The facts of the VM that later tasks of the run take from the kept session instead of a lookup.
KEPT_VM_PROPERTIES = ('name', 'guest.guestFamily', 'guest.guestId', 'config.guestId')
# Where the collection lives (the directory holding ansible_collections), for the session watcher.
_COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..'))
# The watcher waits with the standard library only (no pyVmomi import competing with the tasks of
# the run for the CPU) and imports the session code once the run has ended.
_WATCHER = (
    'import json, sys, time\n'
    'sys.path.insert(0, sys.argv[1])\n'
    'from ansible_collections.guestops.vsphere.plugins.module_utils import _session_cache\n'
    'args = json.loads(sys.argv[2])\n'
    'owner = args.pop(\'owner\')\n'
    'limit = time.monotonic() + _session_cache.STALE_AFTER\n'
    'while time.monotonic() < limit and _session_cache.owner_alive(owner):\n'
    '    time.sleep(0.5)\n'
    'from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import end_sessions_after\n'
    'end_sessions_after(**args)\n'
)


# --------------------------------------------------------------------------- pure parts

def vm_selector(options):
    """The VM lookup arguments (find_vm) from the connection options; raises AnsibleError when they conflict."""
    uuid, moid, path = options.get('vm_uuid'), options.get('vm_moid'), options.get('vm_path')
    given = [name for name, value in (('vm_uuid', uuid), ('vm_moid', moid), ('vm_path', path)) if value]
    if len(given) > 1:
        raise AnsibleError('The VM is selected twice (%s); set only one of ansible_vmtools_vm_uuid, '
                           'ansible_vmtools_vm_moid and ansible_vmware_guest_path.' % ' and '.join(given))
    if uuid:
        return dict(uuid=uuid)
    if moid:
        return dict(moid=moid)
    if path:
        parts = [part for part in path.strip('/').split('/') if part]
        if len(parts) < 3 or parts[1] != 'vm':
            raise AnsibleError("The VM path '%s' is not DATACENTER/vm/[FOLDER/]NAME; give it as community.vmware's "
                               "ansible_vmware_guest_path takes it, for example DC0/vm/web/web01." % path)
        return dict(name=parts[-1], datacenter=parts[0], folder='/' + '/'.join(parts[:-1]))
    name = options.get('remote_addr')
    if not name:
        raise AnsibleError('No VM to connect to: set ansible_host (the VM name), ansible_vmtools_vm_uuid or '
                           'ansible_vmtools_vm_moid.')
    return dict(name=name, datacenter=options.get('datacenter') or None, folder=options.get('folder') or None)


def connection_message(err):
    """The engine's message, with the names this connection gives the transfer settings."""
    msg = err.msg
    if 'transfer_mode=vcenter' in msg or 'transfer_host' in msg:
        msg += (' (For this connection they are the variables ansible_vmtools_transfer_host and '
                'ansible_vmtools_transfer_mode.)')
    return msg


def selector_key(selector):
    return json.dumps(selector, sort_keys=True)


def guest_command(cmd, temp_dir):
    """The command line the wrapper runs for Ansible's ``cmd``.

    Like a login over SSH it starts in the guest user's home directory. TMPDIR points into the
    command's private directory, so what a module puts there (AnsiballZ unpacks itself into a
    temporary directory) goes when that directory is removed, also after the module was killed.
    """
    return 'TMPDIR=%s; export TMPDIR; cd 2>/dev/null; %s' % (posix_quote(temp_dir), cmd)


# The become prompt is answered inside the guest, as the SSH connection answers it on the controller
# (it writes the password only once it has seen the prompt): a feeder waits until the become method
# prints its prompt (then the whole stdin file goes to the command, the password being its first
# line) or the success marker (no password was needed: the first line is skipped), and stops when
# the command has ended without either (its subshell's EXIT trap creates $6, whatever ends it). $1 prompt, $2 success marker, $3 stdin file, $4 stderr
# file, $5 stdout file, $6 file that the command side creates when it ends.
BECOME_FEEDER = (
    'i=0; while [ "$i" -lt 1200 ] && [ ! -e "$6" ]; do '
    'if grep -qF -- "$1" "$4" 2>/dev/null; then exec cat -- "$3"; fi; '
    'if grep -qF -- "$2" "$5" 2>/dev/null; then exec tail -n +2 -- "$3"; fi; '
    'sleep 0.05 2>/dev/null || sleep 1; i=$((i + 1)); done'
)


def feed_become(cmd, prompt, success, stdin_path, stderr_path, stdout_path, ended_path):
    """``cmd`` with its standard input from the become feeder (see BECOME_FEEDER)."""
    feeder = ' '.join(['/bin/sh', '-c', posix_quote(BECOME_FEEDER), 'guestops-become'] + [
        posix_quote(value) for value in (prompt, success, stdin_path, stderr_path, stdout_path, ended_path)])
    return '%s | (trap %s EXIT\n%s\n)' % (feeder, posix_quote(': >' + posix_quote(ended_path)), cmd)


def strip_prompt(data, prompt):
    """Remove the become prompt (sudo prints it to stderr without a line break) from ``data``."""
    if not prompt:
        return data
    marker = to_bytes(prompt)
    index = data.find(marker)
    if index < 0:
        return data
    return data[:index] + data[index + len(marker):].lstrip(b' ')


def is_windows(vm_props, shell_family):
    """Whether the VM (the collection's rule, _paths.guest_os_source) or the shell type is Windows."""
    return shell_family == 'powershell' or _paths.guest_os_of('auto', vm_props) == 'windows'


# --------------------------------------------------------------------------- the connection

class Connection(ConnectionBase):
    """Ansible tasks inside a vSphere VM through VMware Tools."""

    transport = 'guestops.vsphere.vmtools'
    has_pipelining = True
    has_tty = False

    def __init__(self, play_context, *args, **kwargs):
        super(Connection, self).__init__(play_context, *args, **kwargs)
        # The run whose lifetime a kept session follows: the Ansible process that forked this worker
        # (Ansible passes its pid), or this process when it is that process (meta: reset_connection).
        self._run_pid = kwargs.get('ansible_playbook_pid') or os.getpid()
        self._session = None
        self._client = None
        self._vm = None
        self._swept = False

    # ----------------------------------------------------------------- settings
    def _vm_options(self):
        names = ('remote_addr', 'vm_uuid', 'vm_moid', 'vm_path', 'datacenter', 'folder')
        return dict((name, self.get_option(name)) for name in names)

    def _owner(self):
        return _session_cache.owner(self._run_pid)

    def _session_name(self, selector):
        owner = self._owner()
        return 'vmtools:%s:%s:%s:%s' % (owner['owner_pid'], owner['owner_start'], self.get_option('remote_user'),
                                        selector_key(selector))

    # ----------------------------------------------------------------- connect
    def _connect(self):
        if self._connected:
            return self
        if IMPORT_ERROR is not None or not HAS_PYVMOMI or not HAS_REQUESTS:
            raise AnsibleError('The guestops.vsphere.vmtools connection needs the Python libraries pyvmomi and '
                               'requests on the controller (pip install pyvmomi requests): %s'
                               % (IMPORT_ERROR or 'not found'))
        if self._shell.SHELL_FAMILY == 'powershell':
            raise AnsibleError(self._windows_message(self.get_option('remote_addr')))
        selector = vm_selector(self._vm_options())
        keep = self.get_option('keep_session')
        session = VSphereSession(
            self.get_option('vmware_host'), self.get_option('vmware_user'), self.get_option('vmware_password'),
            self.get_option('vmware_port'), self.get_option('validate_certs'),
            request_timeout=self.get_option('request_timeout'), retry_timeout=self.get_option('retry_timeout'),
            keep_session=self._session_name(selector) if keep else None, session_owner=self._owner())
        try:
            session.connect()
            vm = self._find_vm(session, selector)
        except VSphereError as err:
            # The host is unreachable for the rest of the run: its session is not kept.
            session.end_session = True
            session.close()
            raise AnsibleConnectionFailure(err.msg)
        except BaseException:
            session.close(interrupted=True)
            raise
        if keep and not session.reattached:
            self._start_watcher(session)
        self._session = session
        self._vm = vm
        self._client = GuestClient(session, vm, self.get_option('remote_user'), self.get_option('password'),
                                   transfer_host=self.get_option('transfer_host'),
                                   transfer_validate=self.get_option('transfer_validate'),
                                   transfer_mode=self.get_option('transfer_mode'))
        self._connected = True
        display.vvv('VMTOOLS: %s VM %s (%s) as guest user %s' % (
            'reattached to the kept session for' if session.reattached else 'logged in to %s for' % session.hostname,
            vm.name, vm.moid, self.get_option('remote_user')), host=vm.name)
        return self

    def _find_vm(self, session, selector):
        key = selector_key(selector)
        known = session.kept_extra.get('vm')
        if session.reattached and known and known.get('selector') == key:
            self._swept = bool(known.get('swept'))
            return VirtualMachine(vim.VirtualMachine(known['moid'], session.si._stub), dict(known['props']))
        vm = session.find_vm(**selector)
        problem = vm.readiness_problem()
        if problem:
            raise VSphereError(problem)
        if is_windows(vm.props, self._shell.SHELL_FAMILY):
            raise VSphereError(self._windows_message(vm.name))
        session.kept_extra['vm'] = dict(selector=key, moid=vm.moid,
                                        props=dict((p, vm.get(p)) for p in KEPT_VM_PROPERTIES))
        return vm

    @staticmethod
    def _windows_message(name):
        return ("VM '%s' runs Windows (or the shell type is powershell): the guestops.vsphere.vmtools connection runs "
                "Linux guests only for now. Run programs in Windows guests with guestops.vsphere.guest_exec "
                "(guest_os: windows), or connect with WinRM." % name)

    def _start_watcher(self, session):
        """Start the process that logs this run's kept sessions out when the run ends (one per run and vCenter)."""
        owner = self._owner()
        marker = _session_cache.claim_watch(session.hostname, session.port, owner)
        if marker is None:
            return
        args = dict(owner=owner, hostname=session.hostname, port=session.port,
                    validate_certs=session.validate_certs, request_timeout=session.request_timeout, marker=marker)
        try:
            subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, '-c', _WATCHER, _COLLECTIONS_ROOT, json.dumps(args)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True, start_new_session=True, cwd='/')
        except OSError as exc:
            _session_cache.forget(marker)
            display.warning('Could not start the process that logs out the vCenter session at the end of the run '
                            '(%s); the next run or vCenter\'s idle timeout ends it.' % exc)

    # ----------------------------------------------------------------- commands
    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        client = self._client
        timeout = self.get_option('command_timeout')
        # Only a command that the become method wraps (its success marker is in it) can prompt.
        becomes = bool(sudoable and self.become is not None and self.become.success and self.become.success in cmd)
        prompt = self.become.prompt if becomes and self.become.expect_prompt() else None
        display.vvv('VMTOOLS: EXEC %s' % cmd, host=self._vm.name)
        warnings = []
        try:
            with interruptible():
                rc, stdout, stderr = self._run_job(client, cmd, in_data, timeout, prompt, warnings)
        except Interrupted as stop:
            # The run is going away: log out now. The watcher may have logged the kept session out
            # while the command was being ended, and the session layer then logged in again.
            vm_name = self._vm.name
            self._session.end_session = True
            self.close()
            raise AnsibleError("Interrupted by %s: the command in VM '%s' was ended in the guest, its temporary "
                               "directory removed and the vCenter session logged out." % (stop.name, vm_name))
        if prompt:
            stderr = strip_prompt(stderr, prompt)
        if becomes:
            self._check_become(stdout, stderr)
        return rc, stdout, stderr

    def _run_job(self, client, cmd, in_data, timeout, prompt, warnings):
        """One command as one job of the engine: (rc, stdout, stderr); the job is removed on every path."""
        job = None
        try:
            job = prepare_job(client, 'linux', timeout, WAIT_RETENTION, warn=warnings.append, sweep=not self._swept)
            self._swept = True
            command = guest_command(cmd, job.temp_dir)
            stdin_path = None
            data = b''
            if prompt:
                password = self.become.get_option('become_pass', playcontext=self._play_context) or ''
                data = to_bytes(password) + b'\n'
                command = guest_command(feed_become(
                    cmd, prompt, self.become.success, job.files.stdin, job.files.stderr, job.files.stdout,
                    posixpath.join(job.temp_dir, 'become-ended')), job.temp_dir)
            if in_data:
                data += to_bytes(in_data)
            if data and not prompt:
                stdin_path = job.files.stdin
            if data:
                client.upload(io.BytesIO(data), len(data), job.files.stdin,
                              attributes=client.file_attributes(mode=0o600))
            request = ProgramRequest(cmd=command, timeout=timeout, stdin_path=stdin_path)
            start_job(client, job, request)
            try:
                sizes = wait_for_rc_file(client, job, timeout)
            except WaitTimeout:
                raise AnsibleError("The command did not finish within %s seconds (command_timeout) in VM '%s'; it "
                                   "was ended in the guest together with the processes it started." % (
                                       timeout, self._vm.name))
            rc, stdout, stderr = self._collect(job, sizes)
            job.ended = True
            return rc, stdout, stderr
        except VSphereError as err:
            raise AnsibleConnectionFailure(connection_message(err))
        finally:
            if job is not None:
                remove_job(client, job, warnings)
            for warning in warnings:
                display.warning(warning)

    def _collect(self, job, sizes):
        """(rc, stdout, stderr) of an ended job: one download per file that is not empty."""
        def read(path):
            name = posixpath.basename(path)
            if not sizes.get(name):
                return b''
            return self._client.download_bytes(path).data

        rc = parse_rc(read(job.files.rc))
        stdout, stderr = read(job.files.stdout), read(job.files.stderr)
        if rc is None:
            raise AnsibleError("The command in VM '%s' ended without an exit code (it was killed in the guest)."
                               % self._vm.name)
        if sizes.get(posixpath.basename(job.files.deadline)):
            raise AnsibleError("The command in VM '%s' was ended by the guest after %s seconds (command_timeout)."
                               % (self._vm.name, self.get_option('command_timeout')))
        return rc, stdout, stderr

    def _check_become(self, stdout, stderr):
        become = self.become
        output = stdout + b'\n' + stderr
        if become.check_success(stdout):
            return
        if become.check_incorrect_password(output):
            raise AnsibleError('Incorrect %s password' % become.name)
        if become.check_missing_password(output):
            raise AnsibleError('Missing %s password' % become.name)

    # ----------------------------------------------------------------- files
    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv('VMTOOLS: PUT %s TO %s' % (in_path, out_path), host=self._vm.name)
        b_path = to_bytes(in_path, errors='surrogate_or_strict')
        if not os.path.isfile(b_path):
            raise AnsibleFileNotFound('file or module does not exist: %s' % to_native(in_path))
        client = self._client
        size = os.path.getsize(b_path)
        try:
            if size == 0:
                move_empty_file_into_place(client, out_path, True, 'linux', prefix='.ansible-put-')
                return
            with open(b_path, 'rb') as source:
                client.upload(source, size, out_path, attributes=client.file_attributes(mode=0o600))
        except VSphereError as err:
            raise AnsibleError('Copying %s to %s in VM %s failed: %s'
                               % (in_path, out_path, self._vm.name, connection_message(err)))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv('VMTOOLS: FETCH %s TO %s' % (in_path, out_path), host=self._vm.name)
        b_out = to_bytes(out_path, errors='surrogate_or_strict')
        try:
            with open(b_out, 'wb') as target:
                self._client.download_to(in_path, target)
        except BaseException as err:
            try:
                os.unlink(b_out)
            except OSError:
                pass
            if not isinstance(err, VSphereError):
                raise
            if err.fault is not None and fault_is(err.fault, 'FileNotFound'):
                raise AnsibleFileNotFound('%s does not exist in VM %s' % (in_path, self._vm.name))
            raise AnsibleError('Fetching %s from VM %s failed: %s' % (in_path, self._vm.name, connection_message(err)))

    # ----------------------------------------------------------------- end
    def close(self):
        client, self._client = self._client, None
        session, self._session = self._session, None
        if client is not None:
            client.close()
        if session is not None:
            if self._vm is not None and 'vm' in session.kept_extra:
                session.kept_extra['vm']['swept'] = self._swept
            session.close()
        self._connected = False

    def reset(self):
        """End the kept session (meta: reset_connection); the next task logs in again."""
        if not self._connected:
            self._connect()
        self._session.end_session = True
        self.close()
