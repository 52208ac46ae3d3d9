# -*- coding: utf-8 -*-
# Copyright (c) guestops.vsphere contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # Connection to vCenter/ESXi and selection of the VM (every module).
    DOCUMENTATION = r"""
options:
  hostname:
    description:
      - The vCenter or ESXi server to connect to. Required.
      - If not set, the value of the E(VMWARE_HOST) environment variable is used.
    type: str
  username:
    description:
      - The user name for vCenter or ESXi. Required.
      - If not set, the value of the E(VMWARE_USER) environment variable is used.
    type: str
    aliases: [user, admin]
  password:
    description:
      - The password of O(username). Required. It is used to log in, and once more if vCenter forgets the session
        (a restart); it is never written anywhere or shown.
      - If not set, the value of the E(VMWARE_PASSWORD) environment variable is used.
    type: str
    aliases: [pass, pwd]
  port:
    description:
      - The HTTPS port of vCenter or ESXi.
      - If not set, the value of the E(VMWARE_PORT) environment variable is used.
    type: int
    default: 443
  validate_certs:
    description:
      - Verify the TLS certificates of vCenter/ESXi and of the ESXi hosts used for file transfers.
      - Set to V(false) only for labs with self-signed certificates.
      - If not set, the value of the E(VMWARE_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  proxy_host:
    description:
      - An HTTP proxy (CONNECT) for the connection to vCenter/ESXi and for file transfers.
      - If not set, the value of the E(VMWARE_PROXY_HOST) environment variable is used.
    type: str
  proxy_port:
    description:
      - The port of O(proxy_host).
      - If not set, the value of the E(VMWARE_PROXY_PORT) environment variable is used.
    type: int
  name:
    description:
      - The name of the VM.
      - A name that matches more than one VM is an error that lists the matches with their inventory paths;
        narrow it down with O(datacenter) and O(folder), or use O(uuid) or O(moid).
      - Exactly one of O(name), O(uuid) and O(moid) is required.
    type: str
  datacenter:
    description:
      - Only consider VMs in this datacenter when looking up O(name).
    type: str
  folder:
    description:
      - Only consider VMs in this VM folder when looking up O(name).
      - An absolute inventory path (V(/DC0/vm/F0)), a path relative to the datacenter (V(/vm/F0)) or the
        trailing part of the path (V(F0), V(vm/F0)).
    type: str
  uuid:
    description:
      - The BIOS UUID of the VM, or its instance UUID with O(use_instance_uuid=true).
    type: str
  use_instance_uuid:
    description:
      - Treat O(uuid) as the vCenter instance UUID instead of the BIOS UUID.
    type: bool
    default: false
  moid:
    description:
      - The managed object id of the VM, for example V(vm-42).
    type: str
  request_timeout:
    description:
      - Seconds to wait for vCenter/ESXi (and for the ESXi host in file transfers) to accept a connection or to answer
        a request. An endpoint that accepts connections but never answers fails after this long.
    type: int
    default: 60
  retry_timeout:
    description:
      - Seconds for which a call is repeated while its failure is transient, with growing pauses (at most 5 seconds),
        that is while the guest operations agent is unavailable (VMware Tools restarting), the VM is busy with another
        task or another guest operation (C(InvalidState)), or vCenter drops connections while it restarts.
        A lost vCenter session is logged in again once. Other faults fail at once.
      - V(0) turns the retries off.
    type: int
    default: 90
  keep_session:
    description:
      - A name under which the vCenter session stays open after the task, for later tasks that give the same name and
        connection settings, which use it instead of logging in. The role P(guestops.vsphere.run_program#role) uses it so
        that its steps share one login.
      - The session id is kept in a file that only its owner can read, under C(~/.ansible/guestops_vsphere_sessions)
        on the host running the module, until a task with O(end_session=true) logs out; a task that is interrupted
        (SIGINT, SIGTERM) logs out too. When the module runs on the controller, the session follows Ansible's main
        process; after a run was killed between two tasks, the next task against the same vCenter logs it out.
    type: str
  end_session:
    description:
      - With O(keep_session), log out and forget the kept session at the end of this task.
    type: bool
    default: false
notes:
  - The module runs on the host it is delegated to (usually the controller, with C(delegate_to=localhost) or
    C(connection=local)); it talks to the vSphere API, never to the guest over the network.
  - Every task opens one vSphere session and logs out at the end, also when it fails or is interrupted (SIGINT,
    SIGTERM), unless O(keep_session) keeps it for later tasks.
"""

    # Guest login and file transfers (every module that works inside the guest).
    GUEST = r"""
options:
  guest_username:
    description:
      - The user to log in to the guest OS as (through VMware Tools). Required.
      - If not set, the value of the E(VMWARE_GUEST_USERNAME) environment variable is used.
    type: str
  guest_password:
    description:
      - The password of O(guest_username). It is sent to vSphere only, never put on a guest command line. Required.
      - If not set, the value of the E(VMWARE_GUEST_PASSWORD) environment variable is used.
    type: str
  transfer_host:
    description:
      - Host (and optionally port, V(host:port)) to use in file transfer URLs instead of the one vSphere returns.
      - File transfers go from the host running the module straight to the ESXi host that runs the VM (TCP port
        443 of that host), not through vCenter.
      - Through vCenter the URL names the ESXi host by its name in the vCenter inventory, which often does not
        resolve. When vCenter reports exactly one management address for that host, the module uses it
        instead (as govc does); otherwise the name is tried as it is. A V(*) host (a module connected to ESXi
        directly) means the server the module connected to (O(hostname)).
      - Set this when the host running the module cannot resolve or reach that name or address.
      - Only the host part of the URL is changed.
    type: str
  transfer_validate:
    description:
      - How the TLS certificate of the ESXi host is checked for file transfers.
      - V(ca) verifies it against the same trust as vCenter's certificate, following O(validate_certs).
      - V(thumbprint) accepts exactly the certificate that vCenter reports for the VM's host (the SHA-256
        fingerprint of the host's C(config.certificate), else the SHA-1 C(summary.config.sslThumbprint)), as
        govc does; use it when ESXi hosts have self-signed certificates but vCenter's is trusted. A host that
        presents another certificate is refused, and the message names both fingerprints.
      - V(none) does not check the ESXi host's certificate (labs only).
      - A V(*) transfer URL (a module connected to ESXi directly) is the server of the session, checked as
        O(validate_certs) says.
    type: str
    choices: [ca, thumbprint, none]
    default: ca
  transfer_mode:
    description:
      - How files and program output travel between the host running the module and the guest.
      - V(esxi) uses the HTTPS transfer URLs of the ESXi host that runs the VM (fast, no size limit); the host running
        the module must reach that host on port 443 (or O(transfer_host)).
      - V(vcenter) sends everything through vCenter alone, for sites where only vCenter is routed. Output and fetched
        files are encoded in the guest into symlink targets that C(ListFilesInGuest) returns; copied files travel in
        the arguments of C(StartProgramInGuest) calls, 40,000 characters each, and are checked with SHA-256 in the
        guest. Linux guests only; the guest needs C(sh), C(gzip), C(base64), C(sha256sum), C(head), C(fold) and
        C(ln) (coreutils or BusyBox; without C(gzip) or C(base64) output is sent uncompressed or as hex).
        Caps are 1 MiB for a copied file and 4 MiB for a fetched file; program output follows C(output_limit).
        Each C(ListFilesInGuest) call carries up to 1,000,000 characters (about 750 KB of compressed data), each
        C(StartProgramInGuest) call 40,000 characters (30 KB), plus one helper program per transfer.
      - V(auto) uses the ESXi host and switches to the vCenter channel for the rest of the task when that host cannot
        be reached (connection refused, timed out, or its name does not resolve); a TLS certificate problem or an HTTP
        error does not switch. The result then explains the switch in C(transfer_note).
      - Results say which channel was used in C(transfer).
      - If not set, the value of the E(VMWARE_GUEST_TRANSFER_MODE) environment variable is used.
    type: str
    choices: [auto, esxi, vcenter]
    default: auto
"""
