// The screens page: every message the bot can send, zh_Hans and en side by side.
"use strict";

function cell(rendered) {
  const box = TG.el("div", "cell");
  box.appendChild(TG.message({ id: 0, from: "bot", text: rendered.text, entities: [],
    buttons: rendered.buttons }, null));
  return box;
}

async function load() {
  const root = document.getElementById("screens");
  const res = await fetch("/api/screens");
  const json = await res.json();
  let group = null;
  let identical = 0;
  for (const s of json.screens) {
    if (s.group !== group) {
      group = s.group;
      root.appendChild(TG.el("h2", null, group));
    }
    const row = TG.el("div", "screen-row" + (s.error ? " error" : ""));
    row.id = "screen-" + s.key;
    row.dataset.key = s.key;
    const note = TG.el("div", "note", s.when);
    note.appendChild(TG.el("code", null, s.key));
    if (s.same) {
      identical += 1;
      note.appendChild(TG.el("div", "same-flag", "identical in both languages"));
    }
    row.appendChild(note);
    if (s.error) {
      const err = TG.el("div", "cell", "could not draw this screen: " + s.error);
      err.style.gridColumn = "2 / 4";
      row.appendChild(err);
    } else {
      const zh = cell(s.zh_Hans);
      zh.lang = "zh-Hans";
      zh.classList.add("zh");
      const en = cell(s.en);
      en.lang = "en";
      en.classList.add("en");
      row.appendChild(zh);
      row.appendChild(en);
    }
    root.appendChild(row);
  }
  document.getElementById("count").textContent =
    `${json.screens.length} screens · ${identical} identical in both languages`;
}

load();
