"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test creates every virtual environment without pip and then runs a cached
``get-pip.py`` to install a pinned pip.  That script is fetched from a host that is not
reachable from our CI machines, so the Makefile seeds ansible-test's cache with this file
instead.  It takes the pip wheel that ships with the interpreter (``ensurepip``) and uses it
to install the requested packages from the package index, exactly as get-pip.py would.
"""
from __future__ import annotations

import glob
import os
import sys


def bundled_pip_wheel() -> str:
    """Return the path of the pip wheel bundled with this interpreter's ensurepip."""
    import ensurepip  # pylint: disable=import-outside-toplevel

    bundled = os.path.join(os.path.dirname(ensurepip.__file__), '_bundled')
    wheels = sorted(glob.glob(os.path.join(bundled, 'pip-*.whl')))
    if not wheels:
        sys.exit('ensurepip has no bundled pip wheel in %s; install python3-venv/ensurepip first' % bundled)
    return wheels[-1]


def main() -> None:
    """Install pip (and whatever else was asked for) using the bundled wheel."""
    args = sys.argv[1:]
    # get-pip.py's own flags: it installs setuptools and wheel too unless told not to.
    extras = [name for name in ('setuptools', 'wheel') if '--no-' + name not in args]
    args = [arg for arg in args if arg not in ('--no-setuptools', '--no-wheel')]
    sys.path.insert(0, bundled_pip_wheel())
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    sys.exit(pip_main(['install', '--upgrade', '--force-reinstall'] + args + extras))


if __name__ == '__main__':
    main()
