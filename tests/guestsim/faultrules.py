"""Fault injection for tests: raise a fault, delay a call or break a transfer, by rule."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass

from . import faults


class RuleError(ValueError):
    """A fault rule is not valid."""


@dataclass
class FaultRule:
    """Matches calls by method (wsdl name, ``*`` for any) and VM name; fires from the nth match on."""

    method: str = '*'
    vm: str | None = None
    fault: str | None = None
    nth: int = 1
    count: int | None = 1
    probability: float | None = None
    delay: float = 0.0
    break_transfer_after: int | None = None
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, data: dict) -> FaultRule:
        if not isinstance(data, dict):
            raise RuleError('a rule is a JSON object')
        known = {'method', 'vm', 'fault', 'nth', 'count', 'probability', 'delay', 'break_transfer_after'}
        unknown = set(data) - known
        if unknown:
            raise RuleError('unknown rule keys: %s' % ', '.join(sorted(unknown)))
        rule = cls(
            method=data.get('method') or '*',
            vm=data.get('vm'),
            fault=data.get('fault'),
            nth=1 if data.get('nth') is None else int(data['nth']),
            count=None if data.get('count', 1) is None else int(data.get('count', 1)),
            probability=None if data.get('probability') is None else float(data['probability']),
            delay=float(data.get('delay') or 0),
            break_transfer_after=(None if data.get('break_transfer_after') is None
                                  else int(data['break_transfer_after'])),
        )
        if rule.fault is not None and rule.fault not in faults.INJECTABLE:
            raise RuleError('unknown fault %r; known: %s' % (rule.fault, ', '.join(sorted(faults.INJECTABLE))))
        if rule.method != '*' and not faults.known_method(rule.method):
            raise RuleError('unknown method %r (use the SOAP method name, e.g. ListProcessesInGuest)' % rule.method)
        if rule.fault is not None and rule.method != '*' and not faults.may_raise(rule.method, rule.fault):
            # vSphere never answers this method with that fault; injecting it would test invented behaviour.
            raise RuleError('%s cannot raise %s on vSphere' % (rule.method, rule.fault))
        if rule.fault is None and not rule.delay and rule.break_transfer_after is None:
            raise RuleError('a rule needs a fault, a delay or break_transfer_after')
        if rule.nth < 1:
            raise RuleError('nth counts from 1')
        if rule.probability is not None and not 0.0 <= rule.probability <= 1.0:
            raise RuleError('probability is between 0 and 1')
        return rule

    def public(self) -> dict:
        return asdict(self)


@dataclass
class Decision:
    """What the matching rules ask for one call."""

    fault: object = None
    delay: float = 0.0
    break_transfer_after: int | None = None


class FaultRules:
    """The active rules; consulted for every SOAP call."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule):
        with self.lock:
            self.rules.append(rule)

    def clear(self):
        with self.lock:
            self.rules = []

    def snapshot(self) -> list:
        with self.lock:
            return [r.public() for r in self.rules]

    def decide(self, method: str, vm_name: str | None) -> Decision:
        decision = Decision()
        with self.lock:
            for rule in self.rules:
                if rule.method not in ('*', method):
                    continue
                if rule.vm is not None and rule.vm != vm_name:
                    continue
                if rule.fault is not None and not faults.may_raise(method, rule.fault):
                    # A wildcard rule skips methods that cannot raise its fault (e.g. Fetch, Login).
                    continue
                rule.seen += 1
                if rule.seen < rule.nth:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability is not None and random.random() >= rule.probability:
                    continue
                rule.fired += 1
                decision.delay += rule.delay
                if rule.break_transfer_after is not None and decision.break_transfer_after is None:
                    decision.break_transfer_after = rule.break_transfer_after
                if rule.fault and decision.fault is None:
                    decision.fault = faults.injectable(rule.fault)
        return decision

    @staticmethod
    def wait(decision: Decision):
        if decision.delay > 0:
            time.sleep(decision.delay)
