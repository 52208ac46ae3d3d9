"""GuestFileManager: temporary files and directories, directories, deletes, listings, moves, attributes."""

from __future__ import annotations

import os
import re
import stat

import pytest
from pyVmomi import vim, vmodl

FM = vim.vm.guest.FileManager


def test_temporary_names_modes_and_default_location(sim, guest):
    directory = guest.files.CreateTemporaryDirectoryInGuest(guest.vm, guest.auth, 'ansible-', '')
    file_path = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'ansible-', '.sh')
    vm_root = os.path.join(sim.state_dir, 'vms', guest.vm._moId)  # pylint: disable=protected-access
    user_tmp = os.path.dirname(directory)
    assert os.path.dirname(file_path) == user_tmp
    assert re.fullmatch(r'vmware-root_\d+-\d+', os.path.basename(user_tmp))
    assert user_tmp.startswith(os.path.join(vm_root, 'tmp') + os.sep)
    assert stat.S_IMODE(os.stat(user_tmp).st_mode) == 0o700
    dir_number = int(re.fullmatch(r'ansible-vmware(\d+)', os.path.basename(directory)).group(1))
    file_number = int(re.fullmatch(r'ansible-vmware(\d+)\.sh', os.path.basename(file_path)).group(1))
    assert dir_number % 2 == 0 and file_number % 2 == 1
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(file_path).st_mode) == 0o600
    inside = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'x', '', directory)
    assert os.path.dirname(inside) == directory
    paths = {t['path']: t['type'] for t in sim.state()['temp_paths']}
    assert paths[directory] == 'directory' and paths[file_path] == 'file' and paths[inside] == 'file'
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, directory, True)
    guest.files.DeleteFileInGuest(guest.vm, guest.auth, file_path)
    remaining = {t['path'] for t in sim.state()['temp_paths']}
    assert not remaining & {directory, file_path, inside}


def test_temporary_in_missing_or_file_location(guest):
    with pytest.raises(vim.fault.FileNotFound) as info:
        guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'a', '', '/no/such/dir')
    assert info.value.file == '/no/such/dir'
    assert info.value.msg == 'File /no/such/dir was not found'
    some_file = guest.files.CreateTemporaryFileInGuest(guest.vm, guest.auth, 'a', '')
    with pytest.raises(vim.fault.NotADirectory):
        guest.files.CreateTemporaryDirectoryInGuest(guest.vm, guest.auth, 'a', '', some_file)
    guest.files.DeleteFileInGuest(guest.vm, guest.auth, some_file)


def test_make_directory(guest):
    base = guest.temp_dir()
    nested = base + '/a/b/c'
    with pytest.raises(vim.fault.FileNotFound):
        guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, nested, False)
    guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, nested, True)
    assert os.path.isdir(nested)
    with pytest.raises(vim.fault.FileAlreadyExists) as info:
        guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, nested, True)
    assert info.value.file == nested
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_delete_file_and_directory_faults(guest):
    base = guest.temp_dir()
    sub = base + '/sub'
    guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, sub, False)
    assert guest.upload(sub + '/f.txt', b'data').status_code == 200
    with pytest.raises(vim.fault.NotAFile):
        guest.files.DeleteFileInGuest(guest.vm, guest.auth, sub)
    with pytest.raises(vim.fault.NotADirectory):
        guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, sub + '/f.txt', False)
    with pytest.raises(vim.fault.DirectoryNotEmpty):
        guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, sub, False)
    with pytest.raises(vim.fault.FileNotFound):
        guest.files.DeleteFileInGuest(guest.vm, guest.auth, sub + '/missing')
    guest.files.DeleteFileInGuest(guest.vm, guest.auth, sub + '/f.txt')
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, sub, False)
    assert not os.path.exists(sub)
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)
    with pytest.raises(vim.fault.FileNotFound):
        guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_list_files(guest):
    base = guest.temp_dir()
    for index in range(7):
        assert guest.upload('%s/file%d.log' % (base, index), b'x' * (index + 1)).status_code == 200
    guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, base + '/dir', False)
    os.symlink(base + '/file1.log', base + '/link')
    listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, base)
    names = [f.path for f in listing.files]
    assert names[:2] == ['.', '..']
    assert listing.remaining == 0 and len(names) == 11
    kinds = {f.path: f.type for f in listing.files}
    assert kinds['dir'] == 'directory' and kinds['link'] == 'symlink' and kinds['file3.log'] == 'file'
    by_name = {f.path: f for f in listing.files}
    assert by_name['file3.log'].size == 4
    assert by_name['link'].attributes.symlinkTarget == base + '/file1.log'
    assert stat.S_ISREG(by_name['file3.log'].attributes.permissions)
    page = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, 2, 3)
    assert [f.path for f in page.files] == names[2:5] and page.remaining == 6
    matched = guest.files.ListFilesInGuest(guest.vm, guest.auth, base, None, None, r'file[2-4]\.log$')
    assert sorted(f.path for f in matched.files) == ['file2.log', 'file3.log', 'file4.log']
    single = guest.files.ListFilesInGuest(guest.vm, guest.auth, base + '/file5.log')
    assert [f.path for f in single.files] == [base + '/file5.log']
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.files.ListFilesInGuest(guest.vm, guest.auth, base, None, None, '([unclosed')
    with pytest.raises(vim.fault.FileNotFound):
        guest.files.ListFilesInGuest(guest.vm, guest.auth, base + '/none')
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_list_files_default_page_size(guest):
    base = guest.temp_dir()
    for index in range(60):
        open('%s/f%02d' % (base, index), 'w', encoding='utf-8').close()
    listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, base)
    assert len(listing.files) == 50 and listing.remaining == 12
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_move_and_change_attributes(guest):
    base = guest.temp_dir()
    assert guest.upload(base + '/a', b'A').status_code == 200
    assert guest.upload(base + '/b', b'B').status_code == 200
    with pytest.raises(vim.fault.FileAlreadyExists):
        guest.files.MoveFileInGuest(guest.vm, guest.auth, base + '/a', base + '/b', False)
    guest.files.MoveFileInGuest(guest.vm, guest.auth, base + '/a', base + '/b', True)
    assert guest.download(base + '/b') == b'A'
    guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, base + '/d1', False)
    guest.files.MoveDirectoryInGuest(guest.vm, guest.auth, base + '/d1', base + '/d2')
    assert os.path.isdir(base + '/d2')
    with pytest.raises(vim.fault.NotADirectory):
        guest.files.MoveDirectoryInGuest(guest.vm, guest.auth, base + '/b', base + '/d3')
    guest.files.ChangeFileAttributesInGuest(guest.vm, guest.auth, base + '/b', FM.PosixFileAttributes(permissions=0o751))
    assert stat.S_IMODE(os.stat(base + '/b').st_mode) == 0o751
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.files.ChangeFileAttributesInGuest(guest.vm, guest.auth, base + '/b',
                                                FM.WindowsFileAttributes(hidden=True))
    guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, base, True)


def test_writes_outside_the_vm_are_denied(guest):
    with pytest.raises(vim.fault.GuestPermissionDenied) as info:
        guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, '/guestsim-should-not-exist', False)
    assert 'does not have sufficient permissions' in info.value.msg
    assert not os.path.exists('/guestsim-should-not-exist')
    # Reading elsewhere works, as for any guest user.
    listing = guest.files.ListFilesInGuest(guest.vm, guest.auth, '/bin/sh')
    assert listing.files[0].path == '/bin/sh'


def test_vms_have_separate_roots(sim, si, auth):
    from .conftest import guest_for  # pylint: disable=import-outside-toplevel
    first = guest_for(sim, si, 'DC0_H0_VM0', auth)
    second = guest_for(sim, si, 'DC0_H0_VM1', auth)
    one = first.temp_dir()
    two = second.temp_dir()
    assert one.split('/vms/')[1].split('/')[0] != two.split('/vms/')[1].split('/')[0]
    with pytest.raises(vim.fault.GuestPermissionDenied):
        second.files.DeleteDirectoryInGuest(second.vm, second.auth, one, True)
    first.files.DeleteDirectoryInGuest(first.vm, first.auth, one, True)
    second.files.DeleteDirectoryInGuest(second.vm, second.auth, two, True)


def test_empty_paths_are_not_the_root_directory(guest):
    for call in (lambda: guest.files.ListFilesInGuest(guest.vm, guest.auth, ''),
                 lambda: guest.files.MakeDirectoryInGuest(guest.vm, guest.auth, '', False),
                 lambda: guest.files.DeleteFileInGuest(guest.vm, guest.auth, ''),
                 lambda: guest.files.DeleteDirectoryInGuest(guest.vm, guest.auth, '', True)):
        with pytest.raises(vim.fault.FileNotFound) as info:
            call()
        assert info.value.msg == 'File <unspecified filename> was not found' and info.value.file == ''
    # The transfer methods check for an empty path first (VIX_E_INVALID_ARG).
    with pytest.raises(vmodl.fault.InvalidArgument):
        guest.files.InitiateFileTransferFromGuest(guest.vm, guest.auth, '')


def test_agent_invalid_argument_names_no_property(guest):
    with pytest.raises(vmodl.fault.InvalidArgument) as info:
        guest.files.ListFilesInGuest(guest.vm, guest.auth, '/', None, None, '(')
    assert info.value.msg == 'A specified parameter was not correct: ' and info.value.invalidProperty is None
