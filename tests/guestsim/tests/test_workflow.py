"""The 8-step best-practice workflow end to end, and many clients doing it at once."""

from __future__ import annotations

import threading

from pyVim.connect import Disconnect
from pyVmomi import vim

from .conftest import GuestClient

SCRIPT = b'#!/bin/sh\necho "out: $1"\necho "err: $1" >&2\nexit 7\n'


def best_practice_run(guest: GuestClient, label: str):
    """temp dir -> temp files -> PUT script -> start with redirection -> poll -> GET outputs -> delete."""
    # 1. a private temporary directory
    directory = guest.files.CreateTemporaryDirectoryInGuest(guest.vm, guest.auth, 'ansible-', '')
    # 2. temporary files inside it for the script and the outputs
    script = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'ansible-', '.sh', directory)
    out = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'ansible-', '.out', directory)
    err = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'ansible-', '.err', directory)
    # 3. upload the script with PUT
    assert guest.upload(script, SCRIPT).status_code == 200
    # 4. start it through an interpreter, redirecting stdout/stderr to the files
    pid = guest.start('/bin/sh', '%s %s > %s 2> %s' % (script, label, out, err), cwd=directory)
    # 5. poll until it has an end time and exit code
    info = guest.wait(pid)
    assert info.exitCode == 7
    # 6. download the outputs with GET
    assert guest.download(out) == ('out: %s\n' % label).encode()
    assert guest.download(err) == ('err: %s\n' % label).encode()
    # 7./8. delete everything recursively
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, directory, True)
    return directory


def test_best_practice_workflow(sim, guest):
    pending = sim.state()['transfers']['pending']
    directory = best_practice_run(guest, 'single')
    state = sim.state()
    assert directory not in [t['path'] for t in state['temp_paths']]
    assert state['calls']['CreateTemporaryFileInGuest'] == 3
    assert state['transfers']['pending'] == pending  # every URL was used up


def test_twenty_concurrent_clients(sim, auth):
    vm_names = ['DC0_H0_VM0', 'DC0_H0_VM1', 'DC0_C0_RP0_VM0', 'DC0_C0_RP0_VM1']
    errors = []
    barrier = threading.Barrier(20)

    def client(index):
        try:
            service_instance = sim.connect()
            guest = GuestClient(sim, service_instance, vm_names[index % len(vm_names)], auth)
            barrier.wait(timeout=60)
            best_practice_run(guest, 'client%d' % index)
            Disconnect(service_instance)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            errors.append('client %d: %r' % (index, exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    state = sim.state()
    assert state['calls']['StartProgramInGuest'] == 20
    assert state['calls']['Login'] == 20
    assert not [s for s in state['sessions'] if s['user'] is None]


def test_ticketed_or_sspi_auth_is_not_accepted(guest):
    guest.auth = vim.vm.guest.SSPIAuthentication(sspiToken='abc')
    try:
        guest.auth_manager.ValidateCredentialsInGuest(guest.vm, guest.auth)
    except vim.fault.InvalidGuestLogin:
        pass
    else:
        raise AssertionError('SSPI authentication must be rejected on a Linux guest')
