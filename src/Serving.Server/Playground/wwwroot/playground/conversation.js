// The conversation: chat (a message history sent whole each turn) or completion (a prompt continued), each
// answer streamed into the transcript as it arrives. Stop aborts the fetch; the server then aborts the request.

import * as api from './api.js';
import { chatBody, completionBody, SettingError, wantsTokens } from './request.js';
import { AnswerView } from './answer.js';
import { el } from './format.js';

const $ = id => document.getElementById(id);

export class Conversation {
  /// hooks: onAuthError(ApiError) when the server refuses the key; onActivity() when a generation starts or ends.
  constructor(hooks) {
    this.hooks = hooks;
    this.model = null;
    this.mode = 'chat';
    this.history = [];        // chat messages sent so far: {role, content}
    this.active = null;       // the running generation: {controller, view}
    this.form = $('composer');
    this.input = $('composer-input');
    this.form.addEventListener('submit', e => { e.preventDefault(); this.submit(); });
    this.input.addEventListener('keydown', e => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.form.requestSubmit(); }
    });
    $('stop').addEventListener('click', () => this.stop());
    $('clear').addEventListener('click', () => this.clear());
    document.addEventListener('keydown', e => { if (e.key === 'Escape' && this.active) this.stop(); });
    for (const radio of document.querySelectorAll('input[name=mode]')) radio.addEventListener('change', () => this.setMode(radio.value));
    this.setMode(document.querySelector('input[name=mode]:checked').value);
  }

  setModel(name) {
    this.model = name;
    $('send').disabled = this.active !== null || name === null;
  }

  setMode(mode) {
    this.mode = mode;
    const chat = mode === 'chat';
    $('transcript-chat').hidden = !chat;
    $('transcript-completion').hidden = chat;
    $('system-row').hidden = !chat;
    $('structured').disabled = !chat;
    $('composer-label').textContent = chat ? 'Message' : 'Prompt';
    this.input.placeholder = chat ? 'Send a message (Enter sends, Shift+Enter adds a line)' : 'Write a prompt to continue (Enter generates)';
    $('send').textContent = chat ? 'Send' : 'Generate';
    this.updateHint();
  }

  transcript() { return $(this.mode === 'chat' ? 'transcript-chat' : 'transcript-completion'); }

  updateHint() { $('empty-hint').hidden = this.transcript().children.length > 0; }

  clear() {
    this.stop();
    if (this.mode === 'chat') this.history = [];
    this.transcript().replaceChildren();
    this.hideError();
    this.updateHint();
  }

  stop() { this.active?.controller.abort(); }

  async submit() {
    const text = this.input.value;
    if (this.active || this.model === null || (this.mode === 'chat' && text.trim() === '')) return;
    this.hideError();
    const chat = this.mode === 'chat';
    let body;
    try {
      body = chat ? chatBody(this.model, this.chatMessages(text)) : completionBody(this.model, text);
    } catch (e) {
      if (!(e instanceof SettingError)) throw e;
      this.showError(e.message);
      $(e.control).focus();
      return;
    }
    const userItem = chat ? this.append(el('li', { class: 'msg user' }, el('div', { class: 'msg-role' }, 'You'), el('div', { class: 'msg-body' }, text))) : null;
    const view = new AnswerView(chat ? this.model : 'Completion', chat ? null : text, wantsTokens());
    this.append(view.item);
    this.input.value = '';
    if (chat) this.history.push({ role: 'user', content: text });
    await this.run(chat ? 'v1/chat/completions' : 'v1/completions', body, view, () => {
      if (chat) { this.history.pop(); userItem.remove(); }
      view.item.remove();
      this.input.value = text;
      this.updateHint();
    });
  }

  chatMessages(text) {
    const system = $('system-prompt').value.trim();
    return [...(system ? [{ role: 'system', content: system }] : []), ...this.history, { role: 'user', content: text }];
  }

  async run(path, body, view, takeBack) {
    const controller = new AbortController();
    this.active = { controller, view };
    this.setBusy(true);
    try {
      view.onRender = () => this.follow();
      await api.stream(path, body, chunk => view.add(chunk), controller.signal);
      view.finish('done');
    } catch (e) {
      // stopped or refused before anything arrived: the turn goes back into the box, as if never sent
      if (view.chunks === 0) takeBack();
      else view.finish(e.name === 'AbortError' ? 'stopped' : 'error');
      if (e.name !== 'AbortError') this.showError(e);
    } finally {
      if (view.chat && view.item.isConnected) this.history.push(view.message());
      this.active = null;
      this.setBusy(false);
      this.announce(view.summary());
    }
  }

  append(item) {
    this.transcript().append(item);
    this.updateHint();
    item.scrollIntoView({ block: 'nearest' });
    return item;
  }

  /// Keeps the newest text in sight unless the reader scrolled up.
  follow() {
    const box = $('transcript-scroll');
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 80) box.scrollTop = box.scrollHeight;
  }

  setBusy(busy) {
    $('send').disabled = busy || this.model === null;
    $('stop').disabled = !busy;
    this.form.setAttribute('aria-busy', String(busy));
    if (busy) this.announce('Generating\u2026');
    this.hooks.onActivity();
  }

  announce(text) { $('status').textContent = text; }

  showError(error) {
    const box = $('error');
    if (error instanceof api.ApiError) {
      const details = [error.type, error.param && `param: ${error.param}`, error.code && `code: ${error.code}`].filter(Boolean).join(' \u00b7 ');
      box.replaceChildren(el('strong', {}, error.title), details ? el('span', { class: 'error-details' }, details) : '', el('p', {}, error.message));
      if (error.isAuth) this.hooks.onAuthError(error);
    } else {
      box.replaceChildren(el('strong', {}, 'Cannot send'), el('p', {}, String(error.message ?? error)));
    }
    box.hidden = false;
  }

  hideError() { $('error').hidden = true; }
}
