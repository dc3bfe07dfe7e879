"""Which staff role may do what. Pure; one table so an auditor can read it in one place.

Clinical judgement (acknowledging, triaging, noting, reporting an SAE) belongs to coordinators
and investigators; an admin keeps the system running and may look and enrol, but must not be
the one who "took responsibility" for an alert. Changing a patient's participation (pause,
resume, withdraw, move Day 0) is a study decision too: coordinators and investigators.
"""

from __future__ import annotations

VIEW = "view"  # /alerts, /patients, /patient
ENROL = "enrol"  # /enroll
CLINICAL = "clinical"  # acknowledge, triage, note, reported to sponsor
STUDY = "study"  # /pause, /resume, /withdraw, /reanchor and their confirmations
CORRECT = "correct"  # a signed site correction of a diary answer (console)
STAFF = "staff"  # invite, unlock or remove a console account

# A monitor (sponsor's CRA, data manager) sees everything and changes nothing.
ROLES = ("coordinator", "investigator", "admin", "monitor")

ALLOWED: dict[str, tuple[str, ...]] = {
    VIEW: ("coordinator", "investigator", "admin", "monitor"),
    ENROL: ("coordinator", "investigator", "admin"),
    CLINICAL: ("coordinator", "investigator"),
    STUDY: ("coordinator", "investigator"),
    CORRECT: ("coordinator", "investigator"),
    STAFF: ("admin",),
}


def allowed(role: str, action: str) -> bool:
    """Unknown actions and roles are refused."""
    return role in ALLOWED.get(action, ())
