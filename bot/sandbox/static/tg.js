// Drawing Telegram-like messages; shared by the sandbox page and the screens page.
"use strict";

const TG = (() => {
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // Telegram entities count UTF-16 code units, which is exactly how JS indexes strings.
  const TAGS = { bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "code" };

  function richText(text, entities) {
    const frag = document.createDocumentFragment();
    const list = (entities || []).filter((e) => TAGS[e.type] || e.type === "text_link" || e.type === "url")
      .sort((a, b) => a.offset - b.offset);
    let pos = 0;
    for (const e of list) {
      if (e.offset < pos) continue; // nested entities: the outer one wins (enough for review)
      frag.appendChild(document.createTextNode(text.slice(pos, e.offset)));
      const inner = text.slice(e.offset, e.offset + e.length);
      let node;
      if (e.type === "text_link" || e.type === "url") {
        node = el("a", null, inner);
        node.href = e.url || inner;
        node.target = "_blank";
        node.rel = "noopener";
      } else {
        node = el(TAGS[e.type], null, inner);
      }
      frag.appendChild(node);
      pos = e.offset + e.length;
    }
    frag.appendChild(document.createTextNode(text.slice(pos)));
    return frag;
  }

  // message: {id, from, text, entities, buttons, at, edited, document, photo}
  // onPress(message, button) is called for callback buttons; null draws them inert.
  function message(msg, onPress) {
    const wrap = el("div", "msg " + (msg.from === "user" ? "user" : "bot"));
    wrap.dataset.id = msg.id;
    const bubble = el("div", "bubble");
    if (msg.photo) {
      const img = el("img");
      img.src = msg.photo;
      img.alt = "photo";
      bubble.appendChild(img);
    }
    if (msg.document) {
      const doc = el("div", "doc");
      const link = el("a", null, msg.document.name);
      link.href = msg.document.url;
      link.target = "_blank";
      doc.appendChild(link);
      bubble.appendChild(doc);
    }
    bubble.appendChild(richText(msg.text || "", msg.entities));
    if (msg.at) {
      const meta = el("span", "meta", (msg.edited ? "✎ " : "") + msg.at.slice(11));
      meta.title = msg.at;
      bubble.appendChild(meta);
    }
    wrap.appendChild(bubble);
    if (msg.buttons && msg.buttons.length) {
      const kb = el("div", "keyboard");
      for (const row of msg.buttons) {
        const r = el("div", "kb-row");
        for (const b of row) {
          if (b.url) {
            const a = el("a", "kb-url", b.text + " ↗");
            a.href = b.url;
            a.target = "_blank";
            a.rel = "noopener";
            r.appendChild(a);
            continue;
          }
          const btn = el("button", null, b.text);
          btn.type = "button";
          btn.dataset.data = b.data || "";
          if (onPress) btn.addEventListener("click", () => onPress(msg, b, btn));
          else btn.disabled = false;
          r.appendChild(btn);
        }
        kb.appendChild(r);
      }
      wrap.appendChild(kb);
    }
    return wrap;
  }

  return { el, message, richText };
})();
