"""The console's patient, enrolment, correction, export, audit and staff pages over HTTP."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources

import pytest
from lxml import etree

from tests.console_support import PASSWORD, console_client, csrf_of, member
from tests.escalation_support import ZH_COORD, day0_patient, submit
from tests.harness import Harness


@pytest.fixture
def h(escalation_team: Harness) -> Harness:
    return escalation_team


async def post(client, path: str, data: dict[str, str], **kw):  # type: ignore[no-untyped-def]
    page = await client.get(path)
    assert page.status == 200, (path, page.status)
    return await client.post(path, data={"csrf": csrf_of(await page.text()), **data}, **kw)


async def test_patients_list_and_patient_page_with_chart(h: Harness) -> None:
    p = await day0_patient(h)
    await submit(p, PAIN="3")
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        html = await (await client.get("/console/patients")).text()
        assert "RP-001" in html and "1/1 (100%)" in html
        html = await (await client.get("/console/patients/RP-001")).text()
        assert 'id="diaries"' in html and "PAIN" in html
        assert "/console/patients/RP-001/chart.png" in html
        assert "Correct an answer" not in html  # a monitor changes nothing
        chart = await client.get("/console/patients/RP-001/chart.png")
        assert chart.status == 200 and chart.content_type == "image/png"
        assert (await chart.read()).startswith(b"\x89PNG")
        assert (await client.get("/console/patients/RP-999")).status == 404
    rows = await h.rows("SELECT subject, new_value FROM audit WHERE action = 'staff_access'")
    seen = {(r["subject"], r["new_value"]) for r in rows}
    assert {
        (None, "console:patients"),
        ("RP-001", "console:patient"),
        ("RP-001", "console:chart"),
    } <= seen


async def test_enrol_one_patient_and_refuse_bad_input(h: Harness) -> None:
    async with console_client(h) as client:
        await member(
            h,
            client,
            "wang@example.org",
            "coordinator",
            telegram_id=ZH_COORD,
            name="Wang Fang",
            lang="zh_Hans",
        )
        good = {
            "subject": "RP-010",
            "injection_date": "2026-12-10",
            "lang": "zh_Hans",
            "timezone": "Asia/Shanghai",
            "prompt_time": "20:00",
        }
        for field, bad, expect in (
            ("subject", "RP 010<script>", "受试者编号"),
            ("injection_date", "10.12.2026", "YYYY-MM-DD"),
            ("timezone", "Mars/Olympus", "时区"),
        ):
            resp = await post(client, "/console/enrol", {**good, field: bad})
            assert resp.status == 400
            text = await resp.text()
            assert expect in text and "<script>" not in text
        assert await h.rows("SELECT * FROM patients") == []
        resp = await post(client, "/console/enrol", good)
        html = await resp.text()
        assert resp.status == 200 and "RP-010" in html
        code = re.search(r'<code class="code">([^<]+)</code>', html)
        assert code and "<svg" in html  # the code and the QR code of the Telegram link
        resp = await post(client, "/console/enrol", good)
        assert resp.status == 400 and "RP-010" in await resp.text()
    [row] = await h.rows("SELECT actor FROM audit WHERE action = 'enrol'")
    assert row["actor"] == f"staff:{ZH_COORD}"


async def test_bulk_enrolment_previews_before_it_commits(h: Harness) -> None:
    csv = (
        "subject,injection_date,lang,timezone,prompt_time\n"
        "RP-020,2026-12-10,zh,Asia/Shanghai,20:00\n"
        "RP-021,2026-12-11,en,,\n"
    )
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator")
        resp = await post(client, "/console/enrol/csv", {"step": "preview", "csv": csv})
        html = await resp.text()
        assert resp.status == 200 and "RP-020" in html and "RP-021" in html
        assert await h.rows("SELECT * FROM patients") == []  # a preview enrols nobody
        resp = await client.post(
            "/console/enrol/csv", data={"csrf": csrf_of(html), "step": "commit", "csv": csv}
        )
        assert resp.status == 200
        assert len(await h.rows("SELECT * FROM patients")) == 2
        # The same file again: all rows or none, nothing changes.
        resp = await post(client, "/console/enrol/csv", {"step": "commit", "csv": csv})
        assert resp.status == 400 and "already enrolled" in await resp.text()
    assert len(await h.rows("SELECT * FROM patients")) == 2


async def test_pause_needs_a_reason_and_the_role(h: Harness) -> None:
    await day0_patient(h)
    async with console_client(h) as client:
        await member(h, client, "admin@example.org", "admin")
        resp = await client.get("/console/patients/RP-001/manage")
        assert resp.status == 403
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator")
        resp = await post(
            client, "/console/patients/RP-001/manage", {"action": "pause", "reason": ""}
        )
        assert resp.status == 400 and "reason" in await resp.text()
        resp = await post(
            client,
            "/console/patients/RP-001/manage",
            {"action": "withdraw", "reason": "consent withdrawn"},
        )
        assert resp.status == 400 and "confirm" in await resp.text()
        resp = await post(
            client,
            "/console/patients/RP-001/manage",
            {"action": "pause", "reason": "in hospital"},
            allow_redirects=False,
        )
        assert resp.status == 303
    [p] = await h.rows("SELECT status FROM patients")
    assert p["status"] == "paused"
    [row] = await h.rows("SELECT actor, reason FROM audit WHERE action = 'pause'")
    assert row["reason"] == "in hospital" and row["actor"].startswith("staff:-")


async def test_signed_correction_appears_in_the_odm_export_with_its_signer(h: Harness) -> None:
    p = await day0_patient(h)
    await submit(p, PAIN="3")
    async with console_client(h) as client:
        await member(h, client, "li@example.org", "investigator", name="Dr Li Na")
        form = {"day": "0", "item": "PAIN", "value": "6", "reason": "patient phoned: it was 6"}
        resp = await post(client, "/console/patients/RP-001/correct", {**form, "password": "nope"})
        assert resp.status == 403 and "nothing was signed" in await resp.text()
        [a] = await h.rows("SELECT value FROM answers WHERE item = 'PAIN'")
        assert a["value"] == "3"
        resp = await post(
            client, "/console/patients/RP-001/correct", {**form, "password": PASSWORD}
        )
        html = await resp.text()
        assert resp.status == 200 and "3 → 6" in html and "Dr Li Na" in html
        [a] = await h.rows("SELECT value FROM answers WHERE item = 'PAIN'")
        assert a["value"] == "6"
        resp = await post(client, "/console/exports", {"format": "odm", "subject": "RP-001"})
        assert resp.status == 200
        xml = await resp.read()
    [sig] = await h.rows("SELECT actor, new_value, reason FROM audit WHERE action = 'e_signature'")
    assert json.loads(sig["new_value"]) == {"signer": "Dr Li Na", "meaning": "correction approved"}
    assert (await h.rows("SELECT count(*) AS n FROM audit WHERE action = 'e_signature_failed'"))[0][
        "n"
    ] == 1
    doc = etree.fromstring(xml)
    xsd = resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    etree.XMLSchema(etree.parse(str(xsd))).assertValid(doc)
    ns = {"o": "http://www.cdisc.org/ns/odm/v1.3"}
    [item] = doc.xpath("//o:ItemData[@TransactionType='Update' and @Value='6']", namespaces=ns)
    signer = item.xpath("o:Signature/o:UserRef/@UserOID", namespaces=ns)[0]
    assert signer == item.xpath("o:AuditRecord/o:UserRef/@UserOID", namespaces=ns)[0]
    assert item.xpath("o:Signature/o:SignatureRef/@SignatureOID", namespaces=ns) == [
        "SIG.CORRECTION"
    ]
    meaning = doc.xpath("//o:SignatureDef/o:Meaning/text()", namespaces=ns)
    assert meaning == ["correction approved"]
    [export] = await h.rows("SELECT new_value FROM audit WHERE action = 'export'")
    digests = json.loads(export["new_value"])["sha256"]
    assert list(digests.values()) == [hashlib.sha256(xml).hexdigest()]


async def test_audit_trail_filters_and_verify(h: Harness) -> None:
    await day0_patient(h)
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        html = await (await client.get("/console/audit?subject=RP-001&verify=1")).text()
        assert "the chain is intact" in html
        assert "enrol" in html and "console_login" not in html.split('class="audit"')[1]
        html = await (await client.get("/console/audit?action=console_login")).text()
        assert html.split('class="audit"')[1].count("<tr>") == 2  # header + one login


async def test_only_admins_manage_staff(h: Harness) -> None:
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator")
        assert (await client.get("/console/staff")).status == 403
    async with console_client(h) as client:
        await member(h, client, "admin@example.org", "admin")
        resp = await post(
            client,
            "/console/staff",
            {"action": "invite", "name": "New Person", "email": "bad-email", "role": "monitor"},
        )
        assert resp.status == 400 and "not an email address" in await resp.text()
        resp = await post(
            client,
            "/console/staff",
            {
                "action": "invite",
                "name": "New Person",
                "email": "new@example.org",
                "role": "monitor",
            },
        )
        html = await resp.text()
        assert "/console/invite/" in html
    [acc] = await h.rows("SELECT role, email FROM staff WHERE email = 'new@example.org'")
    assert acc["role"] == "monitor"
