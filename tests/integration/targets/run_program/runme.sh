#!/usr/bin/env bash
# Integration tests of the run_program role and of the playbooks shipped with the collection.
# ansible-test passes the settings of tests/integration/cloud-config-vcenter.ini as "-e @FILE".
set -eux

ansible-playbook test_role.yml -e "output_dir=${OUTPUT_DIR}" "$@"
ansible-playbook test_playbooks.yml --forks 20 -e "output_dir=${OUTPUT_DIR}" "$@"
