"""ListFilesInGuest as the agent and hostd answer it (symlink targets, paging, patterns, agent replies) and
the size limit of StartProgramInGuest requests."""

from __future__ import annotations

import os

import pytest
from pyVmomi import vim, vmodl

from guestsim.guest import TOOLS_REPLY_MAX, VIX_MAX_USER_INPUT, start_request_size

PS = vim.vm.guest.ProcessManager.ProgramSpec


def _replies(sim):
    return sim.state()['tools_replies'].get('ListFilesInGuest', 0)


def test_symlink_targets_paging_and_patterns(sim, guest):
    base = guest.temp_dir()
    for index in range(30):
        os.symlink('target-%02d-' % index + 'x' * 100, '%s/%02d' % (base, index))
    os.mkdir(base + '/sub')
    listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 0, 1000)
    names = [f.path for f in listing.files]
    assert names[:2] == ['.', '..'] and len(names) == 33 and listing.remaining == 0
    targets = {f.path: f.attributes.symlinkTarget for f in listing.files if f.type == 'symlink'}
    assert targets['07'] == 'target-07-' + 'x' * 100 and len(targets) == 30
    # The pattern is applied before index: pages of the filtered names.
    first = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 0, 10, '^[0-9]')
    second = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 10, 100, '^[0-9]')
    assert len(first.files) == 10 and first.remaining == 20
    assert len(second.files) == 20 and second.remaining == 0
    assert sorted(f.path for f in first.files + second.files) == ['%02d' % i for i in range(30)]
    # maxResults 0: no entries, only how many there are from index on.
    counted = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 5, 0, '^[0-9]')
    assert not counted.files and counted.remaining == 25
    assert guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 40, 0).remaining == 0
    # Unset maxResults is 50; a negative index or maxResults is refused (guestOps.c).
    assert len(guest.files.ListFilesInGuest(guest.vm, guest.auth, base).files) == 33
    for index, max_results in ((-1, 10), (0, -1)):
        with pytest.raises(vmodl.fault.InvalidArgument):
            guest.files.ListFilesInGuest(guest.vm, guest.auth, base, index, max_results)
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_a_symlink_to_a_directory_is_listed_as_itself(guest):
    base = guest.temp_dir()
    os.mkdir(base + '/real')
    open(base + '/real/inside', 'w', encoding='utf-8').close()
    os.symlink(base + '/real', base + '/link')
    listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, base + '/link')
    assert [(f.path, f.type) for f in listing.files] == [(base + '/link', 'symlink')]
    assert listing.files[0].attributes.symlinkTarget == base + '/real'
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_large_listings_take_several_agent_replies(sim, guest):
    base = guest.temp_dir()
    chunk = 'A' * 4000
    for index in range(100):
        os.symlink(chunk, '%s/%03d' % (base, index))
    sim.reset()
    listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 0, 1000, '^[0-9]')
    assert len(listing.files) == 100 and listing.remaining == 0
    # About 4,230 bytes an entry: 15 fit in one reply of at most 64 KiB - 53 bytes.
    per_reply = TOOLS_REPLY_MAX // (4000 + 230)
    assert _replies(sim) == -(-100 // per_reply) == 7
    assert sim.state()['calls']['ListFilesInGuest'] == 1
    sim.reset()
    guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 0, 10, '^[0-9]')
    assert _replies(sim) == 1
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_start_program_refuses_requests_over_the_vix_limit(guest):
    base = guest.temp_dir()
    header = start_request_size(PS(programPath='', arguments='', workingDirectory=''))
    program = '/bin/sh'
    prefix = "-c 'echo ok >%s/out' " % base
    # Exactly at the limit is accepted; one byte more is InvalidArgument.
    room = VIX_MAX_USER_INPUT - header - len(program) - len(prefix)
    spec = PS(programPath=program, arguments=prefix + 'x' * room)
    assert start_request_size(spec) == VIX_MAX_USER_INPUT
    pid = guest.processes.StartProgramInGuest(guest.vm, guest.auth, spec)
    assert pid > 0 and guest.wait(pid).exitCode == 0
    assert guest.download(base + '/out') == b'ok\n'
    spec.arguments += 'x'
    with pytest.raises(vmodl.fault.InvalidArgument) as info:
        guest.processes.StartProgramInGuest(guest.vm, guest.auth, spec)
    assert info.value.invalidProperty == 'spec'
    # The environment counts too.
    big_env = PS(programPath=program, arguments='-c true', envVariables=['V%d=%s' % (i, 'y' * 1000) for i in range(61)])
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.processes.StartProgramInGuest(guest.vm, guest.auth, big_env)
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_windows_listings_have_no_symlink_target(sim, si):
    from guestsim.tests.conftest import guest_for  # pylint: disable=import-outside-toplevel
    win = guest_for(sim, si, 'DC0_H0_WIN0',
                    vim.vm.guest.NamePasswordAuthentication(username='Administrator', password='guestpass'))
    base = win.temp_dir()
    listing = win.files.ListFilesInGuest(win.vm, win.auth, base)
    assert [f.path for f in listing.files] == ['.', '..']
    assert all(getattr(f.attributes, 'symlinkTarget', None) is None for f in listing.files)
    assert isinstance(listing.files[0].attributes, vim.vm.guest.FileManager.WindowsFileAttributes)
    win.files.DeleteDirectoryInGuest(win.vm, win.auth, base, True)
