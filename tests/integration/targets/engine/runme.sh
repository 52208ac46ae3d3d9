#!/usr/bin/env bash
# The engine under stress: silent endpoints, vCenter restarts, concurrent guest operations, Ansible's
# async, expired job directories, and runs that are interrupted (SIGINT, SIGTERM) midway.
# ansible-test passes the settings of tests/integration/cloud-config-vcenter.ini as "-e @FILE".
set -eux
# The shared setup_guestsim role lives beside this target.
ANSIBLE_ROLES_PATH="$(cd .. && pwd)"
export ANSIBLE_ROLES_PATH

ansible-playbook engine.yml -e "output_dir=${OUTPUT_DIR}" "$@"
ansible-playbook interrupt.yml -e "output_dir=${OUTPUT_DIR}" "$@"
