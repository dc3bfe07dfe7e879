// The sandbox page: polls /api/state, draws the two chats, posts what the person does.
"use strict";

const I18N = {
  en: {
    title: "Diary bot sandbox", local: "local · no Telegram", now: "Now",
    plus_hour: "+1 hour", plus_day: "+1 day", to_next: "to the next prompt",
    screens: "All screens (zh / en)", patient: "Patient", staff: "Study team",
    enrol_title: "Enrol a new patient (as the study team)", subject: "Subject ID",
    injection: "Injection date (Day 0)", language: "Language", ask: "ask at /start",
    prompt_time: "Prompt time", enrol: "Enrol and get the code", code_is: "Enrolment code:",
    send_code: "Send /start with the code", new_patient: "+ Enrol a new patient…",
    next: "Next", prompt: "prompt", reminder: "reminder", none_planned: "no prompt planned",
    day: "Day", prompt_at: "prompt", invited: "invited", active: "active", paused: "paused",
    withdrawn: "withdrawn", completed: "completed", group: "Study-team group (read-only)",
    coordinator: "coordinator", investigator: "investigator", admin: "admin",
    message: "Message", empty_chat: "No messages yet.", moving: "moving the clock…",
    preparing: "preparing the demo study…",
    group_readonly: "The bot posts here; nobody types in the group in this sandbox.",
    web_patient: "Patient · web diary by SMS", sms_inbox: "Messages (SMS)", browser: "Browser",
    open_link: "Tap the link in an SMS to open the web diary.", no_sms: "No SMS yet.",
    birth_year: "year of birth", year_of_birth: "Year of birth",
    web_enrol_title: "Enrol a new web-diary patient (as the study team)", phone: "Mobile number",
    web_enrol: "Enrol and send the link by SMS", new_web_patient: "+ Enrol a new web-diary patient…",
    weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
  },
  zh: {
    title: "日记机器人沙盒", local: "本地运行 · 无需 Telegram", now: "现在",
    plus_hour: "+1 小时", plus_day: "+1 天", to_next: "到下一次发送日记",
    screens: "全部界面（中 / 英）", patient: "患者", staff: "研究团队",
    enrol_title: "登记新患者（研究团队操作）", subject: "受试者编号",
    injection: "注射日期（第 0 天）", language: "语言", ask: "在 /start 时询问",
    prompt_time: "提醒时间", enrol: "登记并获取登记码", code_is: "登记码：",
    send_code: "发送 /start 和登记码", new_patient: "+ 登记新患者…",
    next: "下一次", prompt: "发送日记", reminder: "再次提醒", none_planned: "暂无计划的提醒",
    day: "第", prompt_at: "提醒", invited: "已邀请", active: "进行中", paused: "已暂停",
    withdrawn: "已停止日记", completed: "已完成", group: "研究团队群（只读）",
    coordinator: "协调员", investigator: "研究者", admin: "管理员",
    message: "消息", empty_chat: "还没有消息。", moving: "正在推进时间…",
    preparing: "正在准备演示研究…",
    group_readonly: "机器人在此发布消息；本沙盒中不在群里输入。",
    web_patient: "患者 · 短信和网页日记", sms_inbox: "短信", browser: "浏览器",
    open_link: "点击短信里的链接，打开网页日记。", no_sms: "还没有短信。",
    birth_year: "出生年份", year_of_birth: "出生年份",
    web_enrol_title: "登记新的网页日记患者（研究团队操作）", phone: "手机号码",
    web_enrol: "登记并用短信发送链接", new_web_patient: "+ 登记新的网页日记患者…",
    weekdays: ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
  },
};

const POLL_MS = 700;
let uiLang = localStorage.getItem("sandbox.ui") ||
  ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en");
const selected = { patient: localStorage.getItem("sandbox.patient") || null,
  staff: localStorage.getItem("sandbox.staff") || null,
  web: localStorage.getItem("sandbox.web") || null };
const drawn = { patient: "", staff: "", sms: "" };
let smsInbox = null; // the selected web patient's phone: GET /api/sms
let webTab = "sms";
const seenToasts = new Map(); // user id -> Set of answered query ids already shown
let state = null;
let actions = 0; // requests in flight
let pollTimer = null;

const $ = (id) => document.getElementById(id);
const tr = (key) => (I18N[uiLang] && I18N[uiLang][key]) || I18N.en[key] || key;

// ------------------------------------------------------------------ server calls
async function post(path, body) {
  actions += 1;
  setBusy();
  try {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(json.error || res.statusText);
    return json;
  } catch (err) {
    showError(err.message);
    throw err;
  } finally {
    actions -= 1;
    setBusy();
    pollNow();
  }
}

function showError(text) {
  const bar = $("error-bar");
  bar.textContent = text;
  bar.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { bar.hidden = true; }, 5000);
}

async function poll() {
  const params = new URLSearchParams();
  if (selected.patient && selected.patient !== "new") params.set("patient", selected.patient);
  if (selected.staff) params.set("staff", selected.staff);
  try {
    const res = await fetch("/api/state?" + params.toString(), { cache: "no-store" });
    if (res.ok) {
      state = await res.json();
      const web = currentWebPatient();
      smsInbox = null;
      if (web) {
        const inbox = await fetch("/api/sms?subject=" + encodeURIComponent(web.subject), { cache: "no-store" });
        if (inbox.ok) smsInbox = await inbox.json();
      }
      render();
    }
  } catch (err) {
    // the sandbox was stopped or is restarting: keep trying quietly
  }
}

function pollNow() {
  clearTimeout(pollTimer);
  poll().finally(() => { pollTimer = setTimeout(pollNow, POLL_MS); });
}

// ------------------------------------------------------------------ drawing
function applyLanguage() {
  document.documentElement.lang = uiLang === "zh" ? "zh-Hans" : "en";
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = tr(node.dataset.i18n); });
  $("patient-input").placeholder = tr("message");
  $("staff-input").placeholder = tr("message");
  document.querySelectorAll("#ui-lang button").forEach((b) => b.classList.toggle("on", b.dataset.lang === uiLang));
  drawn.patient = drawn.staff = drawn.sms = "";
  if (state) render();
}

function dayLabel(day) {
  return uiLang === "zh" ? `${tr("day")} ${day} 天` : `${tr("day")} ${day}`;
}

function langName(lang) {
  return lang === "en" ? "EN" : lang === "zh_Hans" ? "中文" : "?";
}

function setBusy() {
  const busy = actions > 0 || (state && (state.busy || !state.ready));
  ["clock-hour", "clock-day", "clock-next"].forEach((id) => { $(id).disabled = !!busy; });
  $("next-info").classList.toggle("busy", !!busy);
}

function fillSelect(select, options, value) {
  const key = JSON.stringify(options);
  if (select.dataset.key !== key) {
    select.innerHTML = "";
    for (const o of options) {
      const opt = document.createElement("option");
      opt.value = o.value;
      opt.textContent = o.label;
      select.appendChild(opt);
    }
    select.dataset.key = key;
  }
  select.value = value;
}

function currentPatient() {
  if (!state) return null;
  return state.patients.find((p) => String(p.user_id) === selected.patient) || null;
}

function webPatients() {
  return state ? state.patients.filter((p) => p.channel === "web") : [];
}

function currentWebPatient() {
  const list = webPatients();
  if (selected.web === "new") return null;
  if (!list.some((p) => p.subject === selected.web)) selected.web = list.length ? list[0].subject : null;
  return list.find((p) => p.subject === selected.web) || null;
}

function currentStaff() {
  if (!state) return null;
  return state.staff.find((s) => String(s.user_id) === selected.staff) || null;
}

function render() {
  // Clock
  const wd = tr("weekdays")[state.weekday - 1];
  $("now").textContent = `${state.now_local} ${wd}`;
  $("tz").textContent = state.timezone;
  const nx = state.next;
  $("next-info").textContent = !state.ready ? tr("preparing") : state.busy ? tr("moving")
    : nx ? `${tr("next")}: ${nx.at_local.slice(5)} · ${tr(nx.kind)} · ${nx.subject}` : tr("none_planned");
  setBusy();
  if (!$("enrol-date").value) { // default injection date: tomorrow in the sandbox's story
    const d = new Date(state.now_local.slice(0, 10) + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + 1);
    $("enrol-date").value = d.toISOString().slice(0, 10);
  }

  // Patient selector (Telegram)
  const patients = state.patients.filter((p) => p.user_id !== null && p.channel !== "web");
  if (!selected.patient || (selected.patient !== "new" && !patients.some((p) => String(p.user_id) === selected.patient))) {
    selected.patient = patients.length ? String(patients[0].user_id) : "new";
  }
  const popts = patients.map((p) => ({
    value: String(p.user_id),
    label: `${p.subject} · ${dayLabel(p.study_day)} · ${langName(p.lang || (p.client_lang === "en" ? "en" : "zh_Hans"))}` +
      (p.status !== "active" ? ` · ${tr(p.status)}` : ""),
  }));
  popts.push({ value: "new", label: tr("new_patient") });
  fillSelect($("patient-select"), popts, selected.patient);
  const patient = currentPatient();
  $("enrol-form").hidden = selected.patient !== "new";
  $("patient-sub").textContent = patient
    ? `${tr(patient.status)} · ${tr("prompt_at")} ${patient.prompt_time}`
    : "";
  const plang = patient ? (patient.lang || (patient.client_lang === "en" ? "en" : "zh_Hans")) : null;
  document.querySelectorAll("#patient-lang button").forEach((b) =>
    b.classList.toggle("on", plang !== null && (b.dataset.lang === "en") === (plang === "en")));
  const invite = patient && patient.status === "invited" && patient.code;
  $("invite").hidden = !invite;
  if (invite) $("invite-code").textContent = patient.code;
  $("patient-input").disabled = !patient;

  // Staff selector
  if (!selected.staff || !(state.staff.some((s) => String(s.user_id) === selected.staff) || String(state.group) === selected.staff)) {
    selected.staff = state.staff.length ? String(state.staff[0].user_id) : null;
  }
  const sopts = state.staff.map((s) => ({
    value: String(s.user_id), label: `${s.name} · ${tr(s.role)} · ${langName(s.lang)}`,
  }));
  if (state.group) sopts.push({ value: String(state.group), label: tr("group") });
  fillSelect($("staff-select"), sopts, selected.staff);
  const member = currentStaff();
  $("staff-sub").textContent = member ? `${tr(member.role)} · ID ${member.user_id}` : tr("group_readonly");
  document.querySelectorAll("#staff-lang button").forEach((b) =>
    b.classList.toggle("on", !!member && (b.dataset.lang === "en") === (member.lang === "en")));
  $("staff-input").disabled = !member;

  drawChat("patient", selected.patient === "new" ? null : selected.patient);
  drawChat("staff", selected.staff);
  drawWebPhone();
}

// The web patient's phone: the SMS inbox, and the browser (an iframe on the sandbox's web
// diary) that the links in the SMS open.
function drawWebPhone() {
  const web = currentWebPatient();
  const wopts = webPatients().map((p) => ({
    value: p.subject,
    label: `${p.subject} · ${dayLabel(p.study_day)} · ${langName(p.lang)}` + (p.status !== "active" ? ` · ${tr(p.status)}` : ""),
  }));
  wopts.push({ value: "new", label: tr("new_web_patient") });
  fillSelect($("web-select"), wopts, selected.web || "new");
  $("web-enrol-form").hidden = !!web; // chosen, or no web patient yet
  if (!$("web-enrol-date").value) $("web-enrol-date").value = $("enrol-date").value;
  $("web-sub").textContent = web ? `${web.phone} · ${tr("birth_year")} ${web.birth_year}` : "";
  $("web-tab-sms").classList.toggle("on", webTab === "sms");
  $("web-tab-browser").classList.toggle("on", webTab === "browser");
  $("web-tabs").hidden = !web;
  $("web-sms").hidden = !web || webTab !== "sms";
  $("web-browser").hidden = !web || webTab !== "browser";
  const inbox = smsInbox && web && smsInbox.subject === web.subject ? smsInbox : null;
  const key = uiLang + JSON.stringify(inbox);
  if (drawn.sms === key) return;
  const box = $("web-sms");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80 || drawn.sms === "";
  drawn.sms = key;
  box.innerHTML = "";
  const messages = inbox ? inbox.messages : [];
  if (!messages.length && web) box.appendChild(TG.el("div", "empty", tr("no_sms")));
  for (const m of messages) {
    const node = TG.el("div", "sms");
    node.appendChild(TG.el("div", "sms-at", m.at));
    const text = TG.el("div", "sms-text");
    let rest = m.text;
    for (const link of m.links) { // the text, with each address a link into the phone's browser
      const at = rest.indexOf(link.url);
      if (at < 0) continue;
      text.appendChild(document.createTextNode(rest.slice(0, at)));
      const a = TG.el("a", "sms-link", link.url);
      a.href = `${location.protocol}//${location.hostname}:${inbox.web_port}${link.path}`;
      a.target = "webdiary";
      a.rel = "noreferrer";
      a.addEventListener("click", () => { webTab = "browser"; $("web-hint").hidden = true; drawWebPhone(); });
      text.appendChild(a);
      rest = rest.slice(at + link.url.length);
    }
    text.appendChild(document.createTextNode(rest));
    node.appendChild(text);
    box.appendChild(node);
  }
  if (nearBottom) box.scrollTop = box.scrollHeight;
}

function drawChat(role, userId) {
  const box = $(role + "-messages");
  const messages = (userId && state.chats[userId]) || [];
  const key = uiLang + JSON.stringify(messages);
  if (drawn[role] === key) {
    showToasts(role, userId);
    return;
  }
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80 || drawn[role] === "";
  drawn[role] = key;
  box.innerHTML = "";
  if (!messages.length) box.appendChild(TG.el("div", "empty", tr("empty_chat")));
  let day = null;
  for (const m of messages) {
    const d = (m.at || "").slice(0, 10);
    if (d && d !== day) {
      day = d;
      const chip = TG.el("div", "day-chip");
      chip.appendChild(TG.el("span", null, d));
      box.appendChild(chip);
    }
    box.appendChild(TG.message(m, (msg, button, node) => press(role, userId, msg, button, node)));
  }
  if (nearBottom) box.scrollTop = box.scrollHeight;
  showToasts(role, userId);
}

function showToasts(role, userId) {
  if (!userId || !state.toasts || !(userId in state.toasts)) return;
  const list = state.toasts[userId];
  let seen = seenToasts.get(userId);
  if (!seen) {
    seenToasts.set(userId, new Set(list.map((x) => x.id))); // history is not replayed
    return;
  }
  for (const toast of list) {
    if (seen.has(toast.id)) continue;
    seen.add(toast.id);
    if (toast.alert) {
      const box = $(role + "-alert");
      box.querySelector(".alert-text").textContent = toast.text;
      box.hidden = false;
    } else {
      const node = $(role + "-toast");
      node.textContent = toast.text;
      node.hidden = false;
      clearTimeout(node.timer);
      node.timer = setTimeout(() => { node.hidden = true; }, 2500);
    }
  }
}

// ------------------------------------------------------------------ actions
async function press(role, userId, msg, button, node) {
  node.disabled = true;
  try {
    await post("/api/press", { user_id: Number(userId), message_id: msg.id, data: button.data });
  } catch (err) {
    node.disabled = false;
  }
}

async function send(role) {
  const input = $(role + "-input");
  const text = input.value;
  const userId = selected[role];
  if (!text.trim() || !userId || userId === "new") return;
  input.value = "";
  try {
    await post("/api/send", { user_id: Number(userId), text });
  } catch (err) {
    input.value = text;
  }
}

async function setLanguage(role, lang) {
  const userId = selected[role];
  if (!userId || userId === "new") return;
  if (role === "staff" && !currentStaff()) return;
  await post("/api/language", { user_id: Number(userId), role, lang });
}

async function enrol(ev) {
  ev.preventDefault();
  const body = {
    subject: $("enrol-subject").value.trim(),
    injection_date: $("enrol-date").value,
    lang: $("enrol-lang").value,
    prompt_time: $("enrol-time").value,
  };
  const res = await post("/api/enroll", body);
  selected.patient = String(res.user_id);
  localStorage.setItem("sandbox.patient", selected.patient);
  $("enrol-subject").value = "";
  $("patient-input").value = `/start ${res.code}`;
  await poll();
}

async function enrolWeb(ev) {
  ev.preventDefault();
  const body = {
    channel: "web",
    subject: $("web-enrol-subject").value.trim(),
    injection_date: $("web-enrol-date").value,
    lang: $("web-enrol-lang").value,
    prompt_time: $("web-enrol-time").value,
    phone: $("web-enrol-phone").value.trim(),
    birth_year: $("web-enrol-year").value.trim(),
  };
  const res = await post("/api/enroll", body);
  selected.web = res.subject;
  localStorage.setItem("sandbox.web", selected.web);
  $("web-enrol-subject").value = "";
  webTab = "sms";
  $("web-frame").src = "about:blank";
  $("web-hint").hidden = false;
  await poll();
}

function wire() {
  $("clock-hour").addEventListener("click", () => post("/api/clock", { action: "hour" }).catch(() => {}));
  $("clock-day").addEventListener("click", () => post("/api/clock", { action: "day" }).catch(() => {}));
  $("clock-next").addEventListener("click", () => post("/api/clock", { action: "next" }).catch(() => {}));
  for (const role of ["patient", "staff"]) {
    $(role + "-composer").addEventListener("submit", (ev) => { ev.preventDefault(); send(role); });
    $(role + "-select").addEventListener("change", (ev) => {
      selected[role] = ev.target.value;
      localStorage.setItem("sandbox." + role, selected[role]);
      drawn[role] = "";
      $(role + "-toast").hidden = true; // a toast belongs to the chat it was shown in
      $(role + "-alert").hidden = true;
      ev.target.blur();
      pollNow();
    });
    document.querySelectorAll(`#${role}-lang button`).forEach((b) =>
      b.addEventListener("click", () => setLanguage(role, b.dataset.lang).catch(() => {})));
    $(role + "-alert").querySelector("button").addEventListener("click", () => { $(role + "-alert").hidden = true; });
  }
  document.querySelectorAll("#ui-lang button").forEach((b) => b.addEventListener("click", () => {
    uiLang = b.dataset.lang;
    localStorage.setItem("sandbox.ui", uiLang);
    applyLanguage();
  }));
  $("enrol-form").addEventListener("submit", (ev) => enrol(ev).catch(() => {}));
  $("web-select").addEventListener("change", (ev) => {
    selected.web = ev.target.value;
    localStorage.setItem("sandbox.web", selected.web);
    webTab = "sms"; // another patient's phone: its browser starts empty
    $("web-frame").src = "about:blank";
    $("web-hint").hidden = false;
    drawn.sms = "";
    ev.target.blur();
    pollNow();
  });
  $("web-enrol-form").addEventListener("submit", (ev) => enrolWeb(ev).catch(() => {}));
  $("web-tab-sms").addEventListener("click", () => { webTab = "sms"; drawWebPhone(); });
  $("web-tab-browser").addEventListener("click", () => { webTab = "browser"; drawWebPhone(); });
  $("invite-send").addEventListener("click", () => {
    const code = $("invite-code").textContent;
    $("patient-input").value = `/start ${code}`;
    send("patient");
  });
}

wire();
applyLanguage();
pollNow();
