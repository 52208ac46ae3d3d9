#!/usr/bin/env bash
# Ansible's own modules inside the guest through the guestops.vsphere.vmtools connection plugin.
# ansible-test passes the settings of tests/integration/cloud-config-vcenter.ini as "-e @FILE".
set -eux
# The shared setup_guestsim role lives beside this target.
ANSIBLE_ROLES_PATH="$(cd .. && pwd)"
export ANSIBLE_ROLES_PATH

ansible-playbook -i inventory.yml connection.yml -e "output_dir=${OUTPUT_DIR}" "$@"
ansible-playbook after_run.yml -e "output_dir=${OUTPUT_DIR}" "$@"
