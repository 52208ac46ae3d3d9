"""vCenter sessions: the ``vmware_soap_session`` cookie and the UserSession behind it."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookies import CookieError, SimpleCookie

from pyVmomi import vim

COOKIE_NAME = 'vmware_soap_session'
# vCenter ends idle sessions after 30 minutes.
DEFAULT_IDLE_TIMEOUT = 1800.0


def set_cookie_header(cookie: str) -> str:
    """The Set-Cookie value exactly as vCenter sends it."""
    return '%s="%s"; Path=/; HttpOnly; Secure; ' % (COOKIE_NAME, cookie)


def cookie_from_header(header: str | None) -> str | None:
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel else None


@dataclass
class Session:
    """One HTTP session (cookie); ``user`` is set while logged in."""

    cookie: str
    created: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.monotonic)
    user: str | None = None
    key: str | None = None
    login_time: datetime | None = None
    ip_address: str = ''
    user_agent: str = ''
    call_count: int = 0
    views: set = field(default_factory=set)
    retrieve_tokens: dict = field(default_factory=dict)

    def user_session(self):
        now = datetime.now(timezone.utc)
        return vim.UserSession(
            key=self.key, userName=self.user, fullName=self.user, loginTime=self.login_time,
            lastActiveTime=now, locale='en', messageLocale='en', extensionSession=False,
            ipAddress=self.ip_address, userAgent=self.user_agent, callCount=self.call_count)


class SessionStore:
    """All sessions; thread safe."""

    def __init__(self, users: dict, idle_timeout: float = DEFAULT_IDLE_TIMEOUT):
        self.users = dict(users)
        self.idle_timeout = idle_timeout
        self.lock = threading.Lock()
        self.sessions: dict[str, Session] = {}

    def lookup(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        with self.lock:
            session = self.sessions.get(cookie)
            if session is None:
                return None
            if time.monotonic() - session.last_active > self.idle_timeout:
                del self.sessions[cookie]
                return None
            session.last_active = time.monotonic()
            return session

    def new(self, ip_address: str, user_agent: str) -> Session:
        session = Session(cookie=secrets.token_hex(20), ip_address=ip_address, user_agent=user_agent)
        with self.lock:
            self.sessions[session.cookie] = session
        return session

    def check_password(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and secrets.compare_digest(expected.encode(), (password or '').encode())

    def login(self, session: Session, user: str):
        with self.lock:
            session.user = user
            session.key = str(uuid.uuid4())
            session.login_time = datetime.now(timezone.utc)

    def logout(self, session: Session):
        with self.lock:
            session.user = None
            session.key = None
            session.login_time = None
            session.retrieve_tokens.clear()

    def remove(self, session: Session):
        """Forget a session: its cookie answers as unknown (NotAuthenticated) from now on."""
        with self.lock:
            if self.sessions.get(session.cookie) is session:
                del self.sessions[session.cookie]
            session.user = session.key = session.login_time = None
            session.retrieve_tokens.clear()

    def remove_all(self) -> list:
        """Forget every session (a vCenter restart); returns them."""
        with self.lock:
            removed = list(self.sessions.values())
            self.sessions.clear()
            for session in removed:
                session.retrieve_tokens.clear()
        return removed

    def authenticated(self) -> list:
        with self.lock:
            return [s for s in self.sessions.values() if s.user]

    def is_active(self, key: str, user: str) -> bool:
        return any(s.key == key and s.user == user for s in self.authenticated())

    def expire(self):
        now = time.monotonic()
        with self.lock:
            for cookie in [c for c, s in self.sessions.items() if now - s.last_active > self.idle_timeout]:
                del self.sessions[cookie]

    def snapshot(self) -> list:
        """Public view for the state endpoint: never the key itself."""
        return [{
            'key_hash': hashlib.sha256(s.key.encode()).hexdigest()[:16],
            'user': s.user,
            'created': datetime.fromtimestamp(s.created, timezone.utc).isoformat(),
        } for s in self.authenticated()]
