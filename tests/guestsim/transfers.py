"""File transfer tickets behind the ``/guestFile?id=..&token=..`` URLs."""

from __future__ import annotations

import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

# "The URL is valid only for 10 minutes from the time it is generated."
DEFAULT_TTL = 600.0


@dataclass
class Ticket:
    """One transfer URL: upload (PUT, to guest) or download (GET, from guest)."""

    id: int
    token: str
    direction: str  # 'to' (PUT) or 'from' (GET)
    vm: object
    guest: object
    path: str
    guest_path: str
    size: int
    attributes: object = None
    overwrite: bool = False
    created: float = 0.0
    in_use: bool = False
    used: bool = False
    break_after: int | None = None
    # The ESXi host (inventory HostSystem) whose management address serves the URL.
    listener: object = None


class TicketError(Exception):
    """A ticket cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TransferStore:
    """Issues, claims and expires tickets; a ticket is good for one successful transfer."""

    def __init__(self, ttl: float = DEFAULT_TTL):
        self.ttl = ttl
        self.lock = threading.Lock()
        self.tickets: dict[int, Ticket] = {}
        self._next_id = random.randint(1000, 20000)

    def issue(self, **fields) -> Ticket:
        with self.lock:
            self._next_id += 1
            ticket_id = self._next_id
            # Real tokens look like a session UUID followed by the id.
            ticket = Ticket(id=ticket_id, token='%s%d' % (uuid.uuid4(), ticket_id), created=time.monotonic(),
                            **fields)
            self.tickets[ticket_id] = ticket
            return ticket

    def claim(self, ticket_id: str, token: str, direction: str, listener=None) -> Ticket:
        """The ticket behind a request to ``listener`` (the ESXi host whose address was called;
        None: the vCenter port, which serves no transfers: every id is unknown there)."""
        try:
            number = int(ticket_id)
        except (TypeError, ValueError):
            raise TicketError(404, 'Not Found') from None
        with self.lock:
            self._expire_locked()
            ticket = self.tickets.get(number)
            if ticket is None or ticket.listener is not listener or not secrets.compare_digest(ticket.token.encode(), (token or '').encode()):
                raise TicketError(404, 'Not Found')
            if ticket.direction != direction:
                raise TicketError(405, 'Method Not Allowed')
            if ticket.vm.power_state != 'poweredOn':
                del self.tickets[number]
                raise TicketError(404, 'Not Found')
            if ticket.in_use:
                raise TicketError(409, 'Conflict')
            ticket.in_use = True
            return ticket

    def release(self, ticket: Ticket, success: bool):
        with self.lock:
            ticket.in_use = False
            if success:
                ticket.used = True
                self.tickets.pop(ticket.id, None)

    def invalidate_vm(self, vm):
        """Power-off, suspend or unregister invalidates the VM's URLs."""
        with self.lock:
            for ticket_id in [t.id for t in self.tickets.values() if t.vm is vm and not t.in_use]:
                del self.tickets[ticket_id]

    def _expire_locked(self):
        now = time.monotonic()
        for ticket_id in [t.id for t in self.tickets.values() if not t.in_use and now - t.created >= self.ttl]:
            del self.tickets[ticket_id]

    def expire(self):
        with self.lock:
            self._expire_locked()

    def pending(self) -> int:
        with self.lock:
            self._expire_locked()
            return len(self.tickets)
