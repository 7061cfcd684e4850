/*! <ketamine-assistant> v1 — pre-infusion expectations assistant. No dependencies, no build step.
 * Install: <script src="https://API/widget/v1/ketamine-assistant.js" data-clinic-name="…" defer></script>
 * Docs: docs/widget.md */
(() => {
  "use strict";

  const TAG = "ketamine-assistant";
  const EVENT = TAG + ":";
  const STORAGE_VERSION = 1;
  const MAX_QUESTION = 500;
  const MAX_HISTORY = 60;
  const REQUEST_TIMEOUT_MS = 20000;
  // Captured now: currentScript is only set while this file is first evaluated.
  const SCRIPT = document.currentScript;
  const SCRIPT_ORIGIN = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href).origin : location.origin;
  // Used only if a crisis reply ever arrives without its resources: safety links must never be missing.
  const FALLBACK_CRISIS_RESOURCES = [
    { label: "Call 911", href: "tel:911", kind: "call" },
    { label: "Call 988 (Suicide & Crisis Lifeline)", href: "tel:988", kind: "call" },
    { label: "Text 988", href: "sms:988", kind: "text" },
    { label: "Chat with 988 online", href: "https://988lifeline.org/chat/", kind: "chat" },
    { label: "Text HOME to 741741 (Crisis Text Line)", href: "sms:741741", kind: "text" },
  ];
  const SAFE_HREF = /^(tel:|sms:|mailto:|https:|http:)/i;

  const STYLES = `
:host {
  all: initial !important;
  display: block !important;
  position: fixed !important;
  right: 0 !important;
  bottom: 0 !important;
  width: 0 !important;
  height: 0 !important;
  z-index: var(--ketamine-assistant-z-index, 2147483000) !important;
  --ka-accent: var(--ketamine-assistant-accent, #0e5a6a);
  --ka-on-accent: var(--ketamine-assistant-on-accent, #ffffff);
  --ka-surface: var(--ketamine-assistant-surface, #ffffff);
  --ka-text: var(--ketamine-assistant-text, #1f2933);
  --ka-bubble: var(--ketamine-assistant-bubble, #eef4f5);
  --ka-focus: var(--ketamine-assistant-focus, #0b57d0);
  --ka-radius: var(--ketamine-assistant-radius, 14px);
  --ka-font: var(--ketamine-assistant-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif);
}
/* The host page's one switch: <ketamine-assistant hidden>. */
:host([hidden]) { display: none !important; }
/* px, not rem: rem follows the host page's root font size. */
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.ka-root { font: 400 15px/1.45 var(--ka-font); color: var(--ka-text); text-align: left; letter-spacing: normal; }
.ka-visually-hidden { position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
button, input { font: inherit; color: inherit; margin: 0; }
button { cursor: pointer; }
a { color: inherit; }
:focus { outline: none; }
:focus-visible { outline: 3px solid var(--ka-focus); outline-offset: 2px; box-shadow: 0 0 0 2px #fff; }
.ka-launcher {
  position: fixed; right: 20px; bottom: 20px; display: inline-flex; align-items: center; gap: 8px;
  min-height: 48px; padding: 10px 18px 10px 14px; border: 0; border-radius: 999px;
  background: var(--ka-accent); color: var(--ka-on-accent); font-weight: 600; font-size: 15px;
  box-shadow: 0 4px 14px rgba(0, 0, 0, .25); transition: transform .15s ease;
}
.ka-launcher:hover { transform: translateY(-1px); }
.ka-launcher svg { width: 22px; height: 22px; flex: none; }
.ka-panel {
  position: fixed; right: 20px; bottom: 20px; width: 380px; height: 620px;
  max-height: calc(100vh - 40px); max-width: calc(100vw - 40px);
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--ka-surface); border-radius: var(--ka-radius);
  box-shadow: 0 12px 40px rgba(0, 0, 0, .28), 0 0 0 1px rgba(0, 0, 0, .08);
  animation: ka-rise .18s ease-out;
}
@keyframes ka-rise { from { opacity: 0; transform: translateY(12px); } to { opacity: 1; transform: none; } }
.ka-header { padding: 8px 8px 8px 16px; background: var(--ka-accent); color: var(--ka-on-accent); }
.ka-header-row { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
.ka-title { flex: 1; min-width: 0; margin: 0; font-size: 17px; font-weight: 700; line-height: 1.25; }
.ka-subtitle { flex: 1; min-width: 0; margin: 0; font-size: 13px; }
.ka-header-button {
  flex: none; min-width: 24px; min-height: 28px; padding: 3px 10px; border-radius: 8px;
  border: 1px solid currentColor; background: transparent; color: inherit; font-size: 13px; font-weight: 600;
}
.ka-close { min-width: 40px; min-height: 40px; padding: 0; border-color: transparent; font-size: 28px; line-height: 1; }
.ka-header-button:hover { background: rgba(255, 255, 255, .16); }
.ka-header :focus-visible { outline-color: var(--ka-on-accent); box-shadow: 0 0 0 5px var(--ka-accent); }
.ka-emergency { margin: 0; padding: 8px 16px; background: #f1f3f5; color: #3f4a53; font-size: 13px; border-bottom: 1px solid #dde1e5; }
.ka-emergency a { display: inline-block; min-height: 24px; padding: 2px 0; color: #7a1010; font-weight: 700; text-underline-offset: 2px; }
.ka-log { flex: 1 1 auto; min-height: 0; overflow-y: auto; padding: 14px 14px 6px; display: flex; flex-direction: column; gap: 10px; overscroll-behavior: contain; }
.ka-msg { max-width: 92%; padding: 10px 12px; border-radius: 12px; overflow-wrap: anywhere; }
.ka-msg p { margin: 0; }
.ka-msg--assistant { align-self: flex-start; background: var(--ka-bubble); border-bottom-left-radius: 4px; }
.ka-msg--patient { align-self: flex-end; background: var(--ka-accent); color: var(--ka-on-accent); border-bottom-right-radius: 4px; white-space: pre-wrap; }
.ka-body { white-space: pre-line; }
.ka-section { display: block; margin-bottom: 4px; font-size: 12px; font-weight: 700; letter-spacing: .02em; text-transform: uppercase; color: #4a5560; }
.ka-notice {
  margin-top: 10px !important; padding: 8px 10px; border-left: 4px solid #b07d00; border-radius: 6px;
  background: #fdf3d7; color: #4d3b00; font-size: 13px;
}
.ka-chips { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.ka-chip {
  min-height: 32px; padding: 5px 12px; border-radius: 999px; border: 1.5px solid var(--ka-accent);
  background: var(--ka-surface); color: var(--ka-accent); font-size: 14px; font-weight: 600; text-align: left; line-height: 1.3;
}
.ka-chip:hover { background: var(--ka-accent); color: var(--ka-on-accent); }
.ka-alert { align-self: stretch; max-width: none; background: #fdecec; color: #7a1010; border: 2px solid #b42318; }
.ka-resources { list-style: none; margin: 10px 0 0; padding: 0; display: grid; gap: 6px; }
.ka-resource {
  display: flex; align-items: center; min-height: 44px; padding: 8px 12px; border-radius: 10px;
  background: #a11a1a; color: #fff; font-weight: 700; text-decoration: none;
}
.ka-resource:hover { background: #7a1010; }
.ka-error { background: #fff; border: 1.5px solid #b42318; color: #7a1010; }
.ka-typing { display: inline-flex; gap: 5px; align-items: center; min-height: 20px; }
.ka-typing span { width: 8px; height: 8px; border-radius: 50%; background: #54606b; animation: ka-blink 1.2s infinite ease-in-out both; }
.ka-typing span:nth-child(2) { animation-delay: .15s; }
.ka-typing span:nth-child(3) { animation-delay: .3s; }
@keyframes ka-blink { 0%, 80%, 100% { opacity: .25; transform: scale(.8); } 40% { opacity: 1; transform: none; } }
.ka-form { flex: none; display: flex; gap: 8px; padding: 10px 12px 12px; border-top: 1px solid #dde1e5; background: var(--ka-surface); }
.ka-input {
  flex: 1; min-width: 0; min-height: 44px; padding: 10px 12px; border: 1.5px solid #6b7680; border-radius: 10px;
  background: #fff; color: #1f2933; font-size: 16px; line-height: 1.3;
}
.ka-input::placeholder { color: #5f6b76; opacity: 1; }
.ka-input:focus-visible { outline-offset: 0; box-shadow: none; border-color: var(--ka-focus); }
.ka-send { flex: none; min-width: 64px; min-height: 44px; padding: 0 16px; border: 0; border-radius: 10px; background: var(--ka-accent); color: var(--ka-on-accent); font-weight: 700; }
@media (max-width: 479.98px) {
  .ka-panel { inset: 0; width: 100%; height: 100%; height: 100dvh; max-width: none; max-height: none; border-radius: 0; }
  .ka-launcher { right: 12px; bottom: 12px; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
}
@media (forced-colors: active) {
  .ka-msg, .ka-notice, .ka-alert, .ka-chip, .ka-resource, .ka-launcher, .ka-send { border: 1px solid CanvasText; }
}`;

  const TEMPLATE = `
<div class="ka-root">
  <button type="button" class="ka-launcher" part="launcher" aria-haspopup="dialog" aria-expanded="false" aria-controls="ka-panel">
    <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2Zm3 6.5a1.5 1.5 0 1 0 0 .01Zm5 0a1.5 1.5 0 1 0 0 .01Zm5 0a1.5 1.5 0 1 0 0 .01Z"/></svg>
    <span class="ka-launcher-label">Questions about your infusion?</span>
  </button>
  <div class="ka-panel" id="ka-panel" part="panel" role="dialog" aria-modal="true" aria-labelledby="ka-title" aria-describedby="ka-emergency" hidden>
    <div class="ka-header">
      <div class="ka-header-row">
        <h2 class="ka-title" id="ka-title"></h2>
        <button type="button" class="ka-header-button ka-close" aria-label="Close assistant"><span aria-hidden="true">×</span></button>
      </div>
      <div class="ka-header-row">
        <p class="ka-subtitle">Before your infusion</p>
        <button type="button" class="ka-header-button ka-clear">Clear conversation</button>
      </div>
    </div>
    <p class="ka-emergency" id="ka-emergency">Not for emergencies: <a href="tel:911">call 911</a>, or <a href="tel:988">call 988</a> or <a href="sms:988">text 988</a>.</p>
    <div class="ka-log" role="log" aria-live="polite" aria-label="Conversation" tabindex="0"></div>
    <form class="ka-form" novalidate>
      <label class="ka-visually-hidden" for="ka-input">Your question</label>
      <input class="ka-input" id="ka-input" type="text" name="question" maxlength="${MAX_QUESTION}" autocomplete="off" enterkeyhint="send" placeholder="Type your question…">
      <button type="submit" class="ka-send">Send</button>
    </form>
  </div>
</div>`;

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text); // server text only ever goes through textContent
    return node;
  };
  const digits = (href) => String(href).replace(/[^0-9]/g, "");

  class KetamineAssistantElement extends HTMLElement {
    static get observedAttributes() {
      return ["clinic-name", "greeting", "open"];
    }

    static define(tag = TAG, registry = window.customElements) {
      if (!registry.get(tag)) registry.define(tag, this);
      return this;
    }

    constructor() {
      super();
      this._history = [];
      this._starters = null;
      this._busy = false;
      this._greeted = false;
      const root = this.attachShadow({ mode: "open" });
      const style = document.createElement("style");
      style.textContent = STYLES;
      const template = document.createElement("template");
      template.innerHTML = TEMPLATE; // static markup only, never server data
      root.append(style, template.content.cloneNode(true));
      const $ = (selector) => root.querySelector(selector);
      this._launcher = $(".ka-launcher");
      this._panel = $(".ka-panel");
      this._title = $(".ka-title");
      this._log = $(".ka-log");
      this._form = $(".ka-form");
      this._input = $(".ka-input");
      this._launcher.addEventListener("click", () => this.show());
      $(".ka-close").addEventListener("click", () => this.hide());
      $(".ka-clear").addEventListener("click", () => this.clear());
      this._form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.ask(this._input.value, { fromInput: true });
      });
      this._panel.addEventListener("keydown", (event) => this._onKeydown(event));
    }

    connectedCallback() {
      this._restore();
      this._renderTitle();
      if (this.hasAttribute("open")) this.show({ focus: false });
    }

    attributeChangedCallback(name) {
      if (!this._restored) return; // connectedCallback applies the initial attributes
      if (name === "open") {
        if (this.hasAttribute("open")) this.show();
        else this.hide();
      } else if (name === "clinic-name") this._renderTitle();
      else if (name === "greeting" && this._greeting) this._greeting.firstChild.textContent = this._greetingText();
    }

    get api() {
      return (this.getAttribute("api") || SCRIPT_ORIGIN).replace(/\/+$/, "");
    }

    get open() {
      return !this._panel.hidden;
    }

    set open(value) {
      if (value) this.show();
      else this.hide();
    }

    show({ focus = true } = {}) {
      if (!this._panel.hidden) return;
      this._panel.hidden = false;
      this._launcher.hidden = true;
      this._launcher.setAttribute("aria-expanded", "true");
      if (!this.hasAttribute("open")) this.setAttribute("open", "");
      this._greet();
      this._scrollToEnd();
      if (focus) this._input.focus();
      this._emit("open");
    }

    hide() {
      if (this._panel.hidden) return;
      this._panel.hidden = true;
      this._launcher.hidden = false;
      this._launcher.setAttribute("aria-expanded", "false");
      if (this.hasAttribute("open")) this.removeAttribute("open");
      this._launcher.focus();
      this._emit("close");
    }

    clear() {
      this._history = [];
      for (const node of [...this._log.children]) if (node !== this._greeting) node.remove();
      this._error = null;
      this._save();
      this._input.focus();
      this._emit("clear");
    }

    async ask(question, { fromInput = false } = {}) {
      const text = String(question || "").trim();
      if (!text || this._busy) return;
      this._busy = true;
      this._removeError();
      if (fromInput) this._input.value = "";
      const bubble = this._renderQuestion(text);
      const typing = this._renderTyping();
      this._scrollToEnd();
      let reply;
      try {
        reply = await this._post(text);
      } catch (error) {
        typing.remove();
        bubble.remove();
        // Keep what the patient typed so retrying is one key press.
        if (!this._input.value) this._input.value = text.slice(0, MAX_QUESTION);
        this._renderError(error.status);
        this._emit("error", { question: text, status: error.status || null, message: String(error.message || error) });
        this._busy = false;
        return;
      }
      typing.remove();
      this._history.push({ role: "patient", text }, { role: "assistant", reply });
      this._history = this._history.slice(-MAX_HISTORY);
      this._save();
      const node = this._renderReply(reply);
      this._scrollTo(bubble, node);
      this._busy = false;
      this._emit("reply", { question: text, reply });
    }

    // — network —

    async _post(question) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
      try {
        const response = await fetch(this.api + "/v1/ask", {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ question }),
          signal: controller.signal,
        });
        if (!response.ok) throw Object.assign(new Error("HTTP " + response.status), { status: response.status });
        const reply = await response.json();
        if (!reply || typeof reply.answer !== "string" || typeof reply.kind !== "string") {
          throw new Error("Unexpected reply shape");
        }
        return reply;
      } finally {
        clearTimeout(timer);
      }
    }

    async _loadStarters() {
      const fallback = (this.getAttribute("suggestions") || "").split("|").map((q) => q.trim()).filter(Boolean);
      try {
        const response = await fetch(this.api + "/v1/suggestions", {
          mode: "cors",
          credentials: "omit",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) throw new Error("HTTP " + response.status);
        const body = await response.json();
        const questions = (body.suggestions || []).map((s) => s && s.question).filter((q) => typeof q === "string" && q);
        this._starters = questions.length ? questions.slice(0, 4) : fallback.slice(0, 4);
        this._save();
      } catch (error) {
        this._starters = fallback.slice(0, 4);
      }
    }

    // — rendering —

    _renderTitle() {
      this._title.textContent = this.getAttribute("clinic-name") || "Infusion questions";
    }

    _greetingText() {
      const clinic = this.getAttribute("clinic-name");
      return (
        this.getAttribute("greeting") ||
        `Hi! I can answer common questions about what a ketamine infusion is like, using information ${
          clinic ? clinic : "your clinic"
        } has approved. I can't give medical advice.`
      );
    }

    async _greet() {
      if (this._greeted) return;
      this._greeted = true;
      const greeting = el("div", "ka-msg ka-msg--assistant ka-greeting");
      greeting.append(el("p", "ka-body", this._greetingText()));
      this._greeting = greeting;
      this._log.prepend(greeting);
      if (this._starters === null) await this._loadStarters();
      if (this._starters.length) greeting.append(this._renderChips(this._starters));
    }

    _renderChips(questions) {
      const group = el("div", "ka-chips");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "Suggested questions");
      for (const question of questions) {
        const chip = el("button", "ka-chip", question);
        chip.type = "button";
        chip.addEventListener("click", () => this.ask(question));
        group.append(chip);
      }
      return group;
    }

    _renderQuestion(text) {
      const bubble = el("div", "ka-msg ka-msg--patient");
      bubble.append(el("span", "ka-visually-hidden", "You: "), el("p", null, text));
      this._log.append(bubble);
      return bubble;
    }

    _renderTyping() {
      const bubble = el("div", "ka-msg ka-msg--assistant ka-pending");
      const dots = el("span", "ka-typing");
      dots.setAttribute("aria-hidden", "true");
      dots.append(el("span"), el("span"), el("span"));
      bubble.append(dots, el("span", "ka-visually-hidden", "The assistant is looking that up."));
      this._log.append(bubble);
      return bubble;
    }

    _renderReply(reply) {
      const notice = typeof reply.notice === "string" ? reply.notice.trim() : "";
      let body = reply.answer;
      // answer = body + "\n\n" + notice; if the server ever breaks that, show the whole answer
      // and the notice again rather than risk dropping it.
      if (notice && body.trimEnd().endsWith(notice)) body = body.trimEnd().slice(0, -notice.length).trimEnd();
      const crisis = reply.kind === "crisis";
      const bubble = el("div", "ka-msg " + (crisis ? "ka-alert" : "ka-msg--assistant"));
      bubble.dataset.kind = reply.kind;
      if (crisis) bubble.setAttribute("role", "alert");
      bubble.append(el("span", "ka-visually-hidden", "Assistant: "));
      if (reply.kind === "answer" && reply.passage && reply.passage.section) {
        bubble.append(el("span", "ka-section", reply.passage.section));
      }
      if (body) bubble.append(el("p", "ka-body", body));
      if (crisis) bubble.append(this._renderResources(reply.resources));
      if (notice) bubble.append(el("p", "ka-notice", notice));
      const questions = (reply.suggestions || []).map((s) => s && s.question).filter((q) => typeof q === "string" && q);
      if (questions.length) bubble.append(this._renderChips(questions.slice(0, 4)));
      this._log.append(bubble);
      return bubble;
    }

    _renderResources(resources) {
      const list = el("ul", "ka-resources");
      list.setAttribute("aria-label", "Get help now");
      const usable = (Array.isArray(resources) ? resources : []).filter(
        (r) => r && typeof r.href === "string" && SAFE_HREF.test(r.href) && typeof r.label === "string" && r.label,
      );
      const items = usable.length ? usable : FALLBACK_CRISIS_RESOURCES.slice();
      const phone = this.getAttribute("clinic-phone");
      if (phone && digits(phone) && !items.some((r) => /^tel:/i.test(r.href) && digits(r.href) === digits(phone))) {
        const clinic = this.getAttribute("clinic-name") || "the clinic";
        items.push({ label: `Call ${clinic}: ${phone}`, href: "tel:" + phone.replace(/[^0-9+]/g, ""), kind: "call" });
      }
      for (const resource of items) {
        const link = el("a", "ka-resource ka-resource--" + String(resource.kind || "web").replace(/[^a-z]/g, ""), resource.label);
        link.href = resource.href;
        if (/^https?:/i.test(resource.href)) {
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          link.append(el("span", "ka-visually-hidden", " (opens in a new tab)"));
        }
        const item = el("li");
        item.append(link);
        list.append(item);
      }
      return list;
    }

    _renderError(status) {
      const phone = this.getAttribute("clinic-phone");
      let text;
      if (status === 422) text = `Please ask a shorter question (up to ${MAX_QUESTION} characters).`;
      else if (status === 429) text = "Lots of questions at once. Please wait a few seconds, then press Send again.";
      else {
        text =
          "Sorry, I couldn't get an answer just now. Your question is still in the box below. Please press Send to try again" +
          (phone ? `, or call the clinic at ${phone}.` : ".");
      }
      this._error = el("div", "ka-msg ka-msg--assistant ka-error");
      this._error.append(el("p", null, text));
      this._log.append(this._error);
      this._scrollToEnd();
    }

    _removeError() {
      if (this._error) this._error.remove();
      this._error = null;
    }

    _scrollToEnd() {
      this._log.scrollTop = this._log.scrollHeight;
    }

    // Long passages: keep the patient's question and the start of the reply in view.
    _scrollTo(question, reply) {
      const top = question.getBoundingClientRect().top - this._log.getBoundingClientRect().top;
      const fits = question.offsetHeight + reply.offsetHeight + 16 <= this._log.clientHeight;
      if (fits) this._scrollToEnd();
      else this._log.scrollTop += top - 8;
    }

    // — keyboard —

    _onKeydown(event) {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.hide();
      } else if (event.key === "Tab") {
        const focusable = [...this._panel.querySelectorAll("a[href], button, input, [tabindex]:not([tabindex='-1'])")].filter(
          (node) => !node.disabled && node.getClientRects().length,
        );
        if (!focusable.length) return;
        const first = focusable[0];
        const last = focusable[focusable.length - 1];
        const active = this.shadowRoot.activeElement;
        if (event.shiftKey && (active === first || !this._panel.contains(active))) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && (active === last || !this._panel.contains(active))) {
          event.preventDefault();
          first.focus();
        }
      }
    }

    // — persistence (sessionStorage: survives navigation within the site, gone when the tab closes) —

    get _storageKey() {
      return `${TAG}:v${STORAGE_VERSION}:${this.api}`;
    }

    _save() {
      try {
        if (this._history.length || this._starters) {
          sessionStorage.setItem(this._storageKey, JSON.stringify({ history: this._history, starters: this._starters }));
        } else sessionStorage.removeItem(this._storageKey);
      } catch (error) {
        // Storage can be full or blocked (private modes); the conversation just won't persist.
      }
    }

    _restore() {
      if (this._restored) return;
      this._restored = true;
      let saved = null;
      try {
        saved = JSON.parse(sessionStorage.getItem(this._storageKey) || "null");
      } catch (error) {
        saved = null;
      }
      if (!saved || !Array.isArray(saved.history)) return;
      if (Array.isArray(saved.starters)) this._starters = saved.starters.filter((q) => typeof q === "string");
      for (const entry of saved.history) {
        if (entry && entry.role === "patient" && typeof entry.text === "string") {
          this._history.push(entry);
          this._renderQuestion(entry.text);
        } else if (entry && entry.role === "assistant" && entry.reply && typeof entry.reply.answer === "string") {
          this._history.push(entry);
          this._renderReply(entry.reply);
        }
      }
    }

    _emit(name, detail = {}) {
      this.dispatchEvent(new CustomEvent(EVENT + name, { bubbles: true, detail }));
    }
  }

  // Loading the script twice (two snippets, a CMS plus a theme…) must not throw or add a second widget.
  if (!window.customElements.get(TAG)) {
    window.KetamineAssistantElement = KetamineAssistantElement.define();
  }

  // The <script data-…> snippet creates the element; a page that placed <ketamine-assistant> itself keeps its own.
  const install = () => {
    if (!SCRIPT || document.querySelector(TAG)) return;
    const widget = document.createElement(TAG);
    for (const [key, value] of Object.entries(SCRIPT.dataset)) {
      widget.setAttribute(key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), value);
    }
    if (!widget.hasAttribute("api")) widget.setAttribute("api", SCRIPT_ORIGIN);
    document.body.append(widget);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", install, { once: true });
  else install();
})();
