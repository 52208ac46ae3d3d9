"""Mirror the checkout into an ansible_collections/<namespace>/<name> tree.

ansible-test only runs from inside such a tree, and a symlink does not do (it resolves the
link).  The files taken are the ones git tracks plus untracked ones it does not ignore, as they
are in the working tree, so local virtual environments and test output never travel along.
Files that disappeared from the checkout are removed from the copy; ansible-test's own output
directory and the generated cloud config are left alone.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys

KEEP_IN_COPY = ('tests/output/', 'tests/integration/cloud-config-vcenter.ini', 'tests/integration/inventory')


def source_files(root: str) -> list[str]:
    """Relative paths of the files that make up the collection source."""
    out = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode()
    return sorted({p for p in out.split('\0') if p and os.path.isfile(os.path.join(root, p))})


def main() -> None:
    """Copy changed files into the destination and delete the ones no longer in the source."""
    root, dest = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    wanted = source_files(root)
    for rel in wanted:
        src, dst = os.path.join(root, rel), os.path.join(dest, rel)
        if os.path.isfile(dst) and filecmp.cmp(src, dst, shallow=False):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    wanted_set = set(wanted)
    for dirpath, dirnames, filenames in os.walk(dest):
        rel_dir = os.path.relpath(dirpath, dest)
        rel_dir = '' if rel_dir == '.' else rel_dir + '/'
        dirnames[:] = [d for d in dirnames if not (rel_dir + d + '/').startswith(KEEP_IN_COPY)]
        for name in filenames:
            rel = rel_dir + name
            if rel not in wanted_set and not rel.startswith(KEEP_IN_COPY):
                os.remove(os.path.join(dirpath, name))
    for dirpath, _dirnames, _filenames in os.walk(dest, topdown=False):
        if dirpath != dest and not os.listdir(dirpath):
            os.rmdir(dirpath)


if __name__ == '__main__':
    main()
