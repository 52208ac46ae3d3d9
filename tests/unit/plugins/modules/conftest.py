# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run modules against an in-memory guest, with the session replaced at its one seam (_module.open_session)."""

from __future__ import annotations

import datetime
import json
import shlex
import ssl
from unittest import mock

import pytest

import requests  # noqa: E402
from pyVmomi import vim  # noqa: E402

try:
    from ansible.module_utils.testing import patch_module_args  # noqa: E402  (ansible-core 2.19+)
except ImportError:  # older ansible-core reads the arguments from basic._ANSIBLE_ARGS
    import contextlib

    from ansible.module_utils import basic  # noqa: E402

    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode('utf-8')):
            yield

from ansible_collections.guestops.vsphere.plugins.module_utils import _module  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils import _guest  # noqa: E402
from ansible_collections.guestops.vsphere.plugins.module_utils._vsphere import (  # noqa: E402
    VirtualMachine,
    VSphereError,
    VSphereSession,
)

CONNECTION = dict(hostname='vc.example.com', username='user', password='vcpass', validate_certs=False)
GUEST = dict(guest_username='root', guest_password='guestpass')

READY = {
    'name': 'web01', 'runtime.powerState': 'poweredOn', 'config.uuid': 'u-1', 'config.instanceUuid': 'i-1',
    'guest.toolsRunningStatus': 'guestToolsRunning', 'guest.toolsVersionStatus2': 'guestToolsCurrent',
    'guest.toolsStatus': 'toolsOk', 'guest.guestOperationsReady': True, 'guest.guestFamily': 'linuxGuest',
    'guest.guestId': 'otherLinux64Guest', 'guest.guestFullName': 'Other Linux', 'guest.guestState': 'running',
    'guest.hostName': 'web01', 'guest.ipAddress': '10.0.0.1',
}


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ExitJson(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs['failed'] = True
    kwargs['msg'] = msg
    raise FailJson(kwargs)


class FakeGuest(object):
    """Files, processes and transfer tickets of one fake VM."""

    def __init__(self):
        self.files = {}          # path -> bytes
        self.dirs = {'/tmp'}
        self.modes = {}
        self.processes = {}      # pid -> ProcessInfo
        self.tickets = {}        # id -> (method, path)
        self.started = []
        self.terminated = []
        self.counter = 100
        self.behaviour = lambda command: (0, b'', b'')  # command -> (rc | None for "runs forever", out, err)
        self.password = 'guestpass'
        self.calls = []

    # helpers
    def _check(self, auth):
        if auth.password != self.password:
            raise vim.fault.InvalidGuestLogin()

    def _next(self):
        self.counter += 2
        return self.counter

    def exists(self, path):
        return path in self.files or path in self.dirs

    # file manager
    def CreateTemporaryDirectoryInGuest(self, vm, auth, prefix, suffix, directoryPath=None):
        self._check(auth)
        parent = directoryPath or '/tmp'
        if parent not in self.dirs:
            raise vim.fault.FileNotFound(file=parent)
        path = '%s/%svmware%d%s' % (parent, prefix, self._next(), suffix)
        self.dirs.add(path)
        return path

    def CreateTemporaryFileInGuest(self, vm, auth, prefix, suffix, directoryPath=None):
        self._check(auth)
        parent = directoryPath or '/tmp'
        if parent not in self.dirs:
            raise vim.fault.FileNotFound(file=parent)
        path = '%s/%svmware%d%s' % (parent, prefix, self._next() + 1, suffix)
        self.files[path] = b''
        self.modes[path] = 0o600
        return path

    def MoveFileInGuest(self, vm, auth, srcFilePath, dstFilePath, overwrite):
        self._check(auth)
        if srcFilePath not in self.files:
            raise vim.fault.FileNotFound(file=srcFilePath)
        if dstFilePath in self.files and not overwrite:
            raise vim.fault.FileAlreadyExists(file=dstFilePath)
        self.files[dstFilePath] = self.files.pop(srcFilePath)
        self.modes[dstFilePath] = self.modes.pop(srcFilePath, 0o644)

    def ListFilesInGuest(self, vm, auth, filePath, index=None, maxResults=None, matchPattern=None):
        self._check(auth)
        attrs = vim.vm.guest.FileManager.PosixFileAttributes(permissions=0o100000 | self.modes.get(filePath, 0o644),
                                                             ownerId=0, groupId=0)
        if filePath in self.dirs:
            files = [vim.vm.guest.FileManager.FileInfo(path='.', type='directory', size=0, attributes=attrs)]
        elif filePath in self.files:
            files = [vim.vm.guest.FileManager.FileInfo(path=filePath, type='file', size=len(self.files[filePath]),
                                                       attributes=attrs)]
        else:
            raise vim.fault.FileNotFound(file=filePath)
        return vim.vm.guest.FileManager.ListFileInfo(files=files, remaining=0)

    def DeleteDirectoryInGuest(self, vm, auth, directoryPath, recursive):
        self._check(auth)
        if directoryPath in self.files:
            raise vim.fault.NotADirectory(file=directoryPath)
        if directoryPath not in self.dirs:
            raise vim.fault.FileNotFound(file=directoryPath)
        prefix = directoryPath + '/'
        self.dirs = set(d for d in self.dirs if d != directoryPath and not d.startswith(prefix))
        self.files = dict((p, v) for p, v in self.files.items() if not p.startswith(prefix))

    def DeleteFileInGuest(self, vm, auth, filePath):
        self._check(auth)
        if filePath not in self.files:
            raise vim.fault.FileNotFound(file=filePath)
        del self.files[filePath]

    def ChangeFileAttributesInGuest(self, vm, auth, guestFilePath, fileAttributes):
        self.modes[guestFilePath] = fileAttributes.permissions

    def InitiateFileTransferToGuest(self, vm, auth, guestFilePath, fileAttributes, fileSize, overwrite):
        self._check(auth)
        if guestFilePath.rsplit('/', 1)[0] not in self.dirs:
            raise vim.fault.FileNotFound(file=guestFilePath)
        if guestFilePath in self.files and not overwrite:
            raise vim.fault.FileAlreadyExists(file=guestFilePath)
        ticket = self._next()
        self.tickets[ticket] = ('PUT', guestFilePath, getattr(fileAttributes, 'permissions', None))
        return 'https://*:443/guestFile?id=%d&token=secret-token' % ticket

    def InitiateFileTransferFromGuest(self, vm, auth, guestFilePath):
        self._check(auth)
        if guestFilePath not in self.files:
            raise vim.fault.FileNotFound(file=guestFilePath)
        ticket = self._next()
        self.tickets[ticket] = ('GET', guestFilePath, None)
        return vim.vm.guest.FileManager.FileTransferInformation(
            url='https://*:443/guestFile?id=%d&token=secret-token' % ticket, size=len(self.files[guestFilePath]),
            attributes=vim.vm.guest.FileManager.PosixFileAttributes())

    # process manager
    def StartProgramInGuest(self, vm, auth, spec):
        self._check(auth)
        self.started.append(spec)
        pid = self._next()
        now = datetime.datetime.now(datetime.timezone.utc)
        if spec.programPath == '/bin/sh':
            words = shlex.split(spec.arguments)
            command, out, err, rc_path = words[3], words[4], words[5], words[6]
        else:
            if spec.programPath not in self.files:
                raise vim.fault.FileNotFound(file=spec.programPath)
            command, out, err, rc_path = spec.programPath, None, None, None
        rc, stdout, stderr = self.behaviour(command)
        for path, data in ((out, stdout), (err, stderr)):
            if path:
                self.files[path] = data
        if rc is not None and rc_path:
            self.files[rc_path] = b'%d\n' % rc
        self.processes[pid] = vim.vm.guest.ProcessManager.ProcessInfo(
            name='sh', pid=pid, owner='root', cmdLine=spec.arguments, startTime=now,
            endTime=now if rc is not None else None, exitCode=rc)
        return pid

    def ListProcessesInGuest(self, vm, auth, pids=None):
        self._check(auth)
        return [p for pid, p in self.processes.items() if not pids or pid in pids]

    def TerminateProcessInGuest(self, vm, auth, pid):
        info = self.processes.get(pid)
        if info is None or info.endTime is not None:
            raise vim.fault.GuestProcessNotFound(pid=pid)
        self.terminated.append(pid)
        info.endTime = info.startTime
        info.exitCode = 0

    def ValidateCredentialsInGuest(self, vm, auth):
        self._check(auth)

    # transfers
    def http(self, method, url, data=None, **kwargs):
        ticket = int(url.split('id=')[1].split('&')[0])
        kind, path, mode = self.tickets.pop(ticket)
        response = mock.Mock(status_code=200, text='')
        if kind == 'PUT' and getattr(self, 'break_puts', 0):
            # The connection drops after a few bytes: the partial file stays, as on ESXi.
            self.break_puts -= 1
            self.files[path] = data.read(2)
            raise requests.exceptions.SSLError(ssl.SSLEOFError(8, 'EOF occurred in violation of protocol'))
        if kind == 'PUT':
            if len(data) == 0:  # ESXi refuses empty uploads
                return mock.Mock(status_code=500, text='Internal Server Error')
            self.files[path] = b''.join(iter(lambda: data.read(65536), b''))
            # vSphere gives an uploaded file 0644 unless asked otherwise, also when it replaces one
            self.modes[path] = mode if mode is not None else 0o644
        else:
            content = self.files[path]
            response.iter_content = lambda chunk_size: iter([content[i:i + 4] for i in range(0, len(content), 4)])
        return response


class FakeSession(VSphereSession):
    def __init__(self, guest, props):
        super(FakeSession, self).__init__('vc.example.com', 'user', None, 443, False)
        self.guest = guest
        self.props = props
        self.logged_out = False
        self.lookups = []

    def connect(self):
        self.si = mock.Mock()
        return self

    def close(self, interrupted=False):
        self.logged_out = True
        self.interrupted = interrupted

    def find_vm(self, **selector):
        self.lookups.append(selector)
        if selector.get('name') == 'missing':
            raise VSphereError("Finding the VM failed: no VM named 'missing' is visible to user 'user'.")
        return VirtualMachine(vim.VirtualMachine(selector.get('moid') or 'vm-1'), dict(self.props))

    def refresh(self, vm):
        return vm

    def guest_managers(self):
        return dict(fileManager=self.guest, processManager=self.guest, authManager=self.guest)


class Harness(object):
    def __init__(self, monkeypatch):
        self.guest = FakeGuest()
        self.props = dict(READY)
        self.sessions = []
        self.monkeypatch = monkeypatch
        monkeypatch.setattr(_module, 'open_session', self._open)
        monkeypatch.setattr(requests.Session, 'request', lambda s, method, url, **kw: self.guest.http(method, url, **kw))
        monkeypatch.setattr(_guest.time, 'sleep', lambda seconds: None)

    def _open(self, params):
        session = FakeSession(self.guest, self.props)
        self.sessions.append(session)
        return session

    def run(self, module, args, check_mode=False):
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        with patch_module_args(args):
            with mock.patch.multiple('ansible.module_utils.basic.AnsibleModule', exit_json=_exit_json,
                                     fail_json=_fail_json):
                try:
                    module.main()
                except ExitJson as result:
                    return result.args[0]
                except FailJson as result:
                    return result.args[0]
        raise AssertionError('module did not exit')


@pytest.fixture
def harness(monkeypatch):
    return Harness(monkeypatch)


def as_json(result):
    return json.dumps(result, default=str)
