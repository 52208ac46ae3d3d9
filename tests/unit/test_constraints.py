# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pins of the environments ansible-test builds follow the pins of the test toolchain."""

from __future__ import annotations

import os

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pins(path):
    found = {}
    with open(path) as handle:
        for line in handle:
            line = line.split('#', 1)[0].strip()
            if '==' in line:
                name, version = line.split('==', 1)
                found[name.strip().lower().replace('_', '-')] = version.strip()
    return found


@pytest.mark.parametrize('suite', ['unit', 'integration'])
def test_suite_constraints_follow_the_toolchain(suite):
    toolchain = pins(os.path.join(TESTS, 'constraints.txt'))
    suite_pins = pins(os.path.join(TESTS, suite, 'constraints.txt'))
    assert {'pyvmomi', 'requests'} <= set(suite_pins)
    assert dict((name, toolchain.get(name)) for name in suite_pins) == suite_pins


def test_the_toolchain_pins_ansible_core_2_19():
    assert pins(os.path.join(TESTS, 'constraints.txt'))['ansible-core'].startswith('2.19.')
