"""The console's patient, enrolment, correction, export, audit and staff pages over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import date
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


def _cells(html: str, subject: str) -> list[str]:
    """The cells of one patient's row in the patients list, tags stripped."""
    body = html.split('id="patients"')[1].split("</tbody>")[0]
    for row in body.split("<tr>")[1:]:
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in row.split("<td>")[1:]]
        if cells and cells[0] == subject:
            return cells
    raise AssertionError(f"{subject} not in the patients list")


async def test_patients_list_shows_every_column(h: Harness) -> None:
    p = await h.patient(501, "RP-001", lang="en", injection=date(2026, 11, 30))
    await h.patient(502, "RP-002", lang="en", injection=date(2026, 11, 30))
    h.api.block(502)  # RP-002 blocks the bot: the Day 0 prompt is refused
    await h.advance(hours=1)  # 20:00 Shanghai: Day 0
    await submit(p, PAIN="9")  # an alert stays open
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        html = await (await client.get("/console/patients")).text()
    head = re.findall(r"<th>([^<]+)</th>", html.split('id="patients"')[1].split("</thead>")[0])
    assert head == [
        "Subject",
        "Study day",
        "Phase",
        "Status",
        "Channel",
        "Last diary",
        "7 days",
        "Overall",
        "Open alerts",
        "Reachable",
    ]
    assert _cells(html, "RP-001") == [
        "RP-001",
        "0",
        "Daily diary",
        "active",
        "telegram",
        "30 Nov 2026",
        "1/1 (100%)",
        "1/1 (100%)",
        "1",
        "yes",
    ]
    two = _cells(html, "RP-002")
    assert two[1:5] == ["0", "Daily diary", "active", "telegram"]
    assert two[5] == "none yet" and two[9] == "no"
    assert two[8] == "1"  # the team is told it cannot reach RP-002


async def test_patient_page_shows_visits_and_the_patients_own_audit_trail(h: Harness) -> None:
    await day0_patient(h)
    await h.patient(502, "RP-002", lang="en", injection=date(2026, 11, 30))
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        html = await (await client.get("/console/patients/RP-001")).text()
    visits = html.split("<h2>Visits</h2>")[1].split("</table>")[0]
    assert (
        "<tr><td>Month 1 visit</td><td>30</td><td>30 Dec 2026</td>"
        "<td>23 Dec 2026 – 6 Jan 2027</td></tr>"
    ) in visits
    assert visits.count("<tr>") == 1 + 6  # header + M1, M3, M6, M12, M18, M24
    trail = html.split("<h2>Audit trail</h2>")[1]
    subjects = re.findall(
        r"<tr><td>\d+</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>", trail
    )
    expected = await h.rows("SELECT count(*) AS n FROM audit WHERE subject = 'RP-001'")
    assert subjects and set(subjects) == {"RP-001"}  # nobody else's entries
    assert len(subjects) == expected[0]["n"]  # this view included
    assert "<td>enrol</td>" in trail and "console:patient" in trail


async def test_csv_and_fhir_exports_download_and_audit_their_hashes(h: Harness) -> None:
    p = await day0_patient(h)
    await submit(p, PAIN="3")
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")
        csv = await post(client, "/console/exports", {"format": "csv"})
        assert csv.status == 200 and csv.content_type == "application/zip"
        assert csv.headers["Content-Disposition"].startswith('attachment; filename="')
        zipped = await csv.read()
        fhir = await post(client, "/console/exports", {"format": "fhir", "subject": "RP-001"})
        assert fhir.status == 200 and fhir.content_type == "application/fhir+json"
        body = await fhir.read()
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        files = {name: z.read(name) for name in z.namelist()}
    assert sorted(files) == [
        "NCT06438809_dictionary.csv",
        "NCT06438809_long.csv",
        "NCT06438809_wide.csv",
    ]
    assert all(files.values()) and b"RP-001" in files["NCT06438809_long.csv"]
    bundle = json.loads(body)
    assert bundle["resourceType"] == "Bundle" and bundle["entry"]
    rows = await h.rows("SELECT actor, new_value FROM audit WHERE action = 'export' ORDER BY id")
    assert [r["actor"] for r in rows] == ["staff:-1", "staff:-1"]
    csv_audit, fhir_audit = (json.loads(r["new_value"]) for r in rows)
    assert csv_audit["format"] == "csv" and csv_audit["sha256"] == {
        name: hashlib.sha256(data).hexdigest() for name, data in files.items()
    }
    assert csv_audit["to"].startswith("console:") and csv_audit["audit_head"]
    assert fhir_audit["subject"] == "RP-001"
    assert list(fhir_audit["sha256"].values()) == [hashlib.sha256(body).hexdigest()]


async def test_audit_trail_filters_by_actor_and_dates_and_shows_the_head(h: Harness) -> None:
    await day0_patient(h)
    await h.advance(days=1)  # the Day 1 prompt: entries dated 1 December
    await h.advance(days=1)  # and 2 December
    async with console_client(h) as client:
        await member(h, client, "mon@example.org", "monitor")

        def table_rows(html: str) -> list[list[str]]:
            body = html.split('class="audit"')[1].split("</tbody>")[0]
            return [re.findall(r"<td>([^<]*)</td>", r) for r in body.split("<tr>")[2:]]

        html = await (await client.get("/console/audit?actor=system")).text()
        rows = table_rows(html)
        [n] = await h.rows("SELECT count(*) AS n FROM audit WHERE actor = 'system'")
        assert rows and {r[2] for r in rows} == {"system"} and len(rows) == n["n"]

        html = await (await client.get("/console/audit?since=2026-12-01&until=2026-12-01")).text()
        rows = table_rows(html)
        [n] = await h.rows("SELECT count(*) AS n FROM audit WHERE at LIKE '2026-12-01%'")
        assert rows and {r[1][:10] for r in rows} == {"2026-12-01"} and len(rows) == n["n"]

        html = await (await client.get("/console/audit")).text()
        shown = re.search(r'<code id="head">([^<]+)</code>', html)
        [head] = await h.rows("SELECT value FROM meta WHERE key = 'audit_head'")
        [last] = await h.rows("SELECT id FROM audit ORDER BY id DESC LIMIT 1")
    assert shown and shown.group(1) == head["value"]
    assert shown.group(1).split()[0] == str(last["id"])


async def test_resume_and_reanchor_from_the_console_with_a_reason(h: Harness) -> None:
    await day0_patient(h)
    async with console_client(h) as client:
        await member(h, client, "anna@example.org", "coordinator")
        path = "/console/patients/RP-001/manage"
        resp = await post(client, path, {"action": "pause", "reason": "in hospital"})
        assert resp.status == 200
        resp = await post(client, path, {"action": "resume", "reason": ""})
        assert resp.status == 400 and "reason" in await resp.text()
        [p] = await h.rows("SELECT status FROM patients")
        assert p["status"] == "paused"  # refused: nothing changed
        resp = await post(
            client, path, {"action": "resume", "reason": "home again"}, allow_redirects=False
        )
        assert resp.status == 303
        [p] = await h.rows("SELECT status FROM patients")
        assert p["status"] == "active"
        resp = await post(
            client,
            path,
            {"action": "reanchor", "reason": "injection moved", "injection_date": "2.12.2026"},
        )
        assert resp.status == 400 and "YYYY-MM-DD" in await resp.text()
        [p] = await h.rows("SELECT injection_date FROM patients")
        assert p["injection_date"] == "2026-11-30"
        resp = await post(
            client,
            path,
            {"action": "reanchor", "reason": "injection moved", "injection_date": "2026-12-02"},
            allow_redirects=False,
        )
        assert resp.status == 303
    [p] = await h.rows("SELECT injection_date FROM patients")
    assert p["injection_date"] == "2026-12-02"
    [resume] = await h.rows(
        "SELECT actor, old_value, new_value, reason FROM audit WHERE action = 'resume'"
    )
    assert resume["actor"] == "staff:-1" and resume["reason"] == "home again"
    [reanchor] = await h.rows(
        "SELECT actor, old_value, new_value, reason FROM audit WHERE action = 'reanchor'"
    )
    assert reanchor["actor"] == "staff:-1" and reanchor["reason"] == "injection moved"
    assert reanchor["old_value"] == "2026-11-30"
    assert json.loads(reanchor["new_value"])["injection_date"] == "2026-12-02"
