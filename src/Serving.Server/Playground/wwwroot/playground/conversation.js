// The conversation: chat (a message history sent whole each turn) or completion (a prompt continued), each
// answer streamed into the transcript as it arrives. Stop aborts the fetch; the server then aborts the request.

import * as api from './api.js';
import { chatBody, completionBody, SettingError, wantsTokens } from './request.js';
import { fromChat, fromCompletion, tokenSpans } from './tokens.js';
import { el, count, rate, seconds } from './format.js';

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
      await api.stream(path, body, chunk => { view.add(chunk); this.follow(); }, controller.signal);
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
      const head = error.status === 0 ? 'Server unreachable' : `${error.status} ${statusText(error.status)}`;
      const details = [error.type, error.param && `param: ${error.param}`, error.code && `code: ${error.code}`].filter(Boolean).join(' \u00b7 ');
      box.replaceChildren(el('strong', {}, head), details ? el('span', { class: 'error-details' }, details) : '', el('p', {}, error.message));
      if (error.isAuth) this.hooks.onAuthError(error);
    } else {
      box.replaceChildren(el('strong', {}, 'Cannot send'), el('p', {}, String(error.message ?? error)));
    }
    box.hidden = false;
  }

  hideError() { $('error').hidden = true; }
}

const statusTexts = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable' };
const statusText = status => statusTexts[status] ?? '';

/// One answer as it streams: text (or token spans), tool calls, and a line of figures once it ends.
class AnswerView {
  constructor(role, prompt, showTokens) {
    this.chat = prompt === null;
    this.showTokens = showTokens;
    this.text = '';
    this.tokens = [];
    this.toolCalls = [];
    this.chunks = 0;
    this.usage = null;
    this.finishReason = null;
    this.started = performance.now();
    this.firstAt = null;
    this.body = el('div', { class: 'msg-text' });
    this.tools = el('div', { class: 'msg-tools' });
    this.meta = el('p', { class: 'msg-meta' }, 'waiting for the first token\u2026');
    const content = el('div', { class: 'msg-body' }, prompt === null ? '' : el('span', { class: 'prompt-echo' }, prompt), this.body);
    this.item = el('li', { class: `msg ${this.chat ? 'assistant' : 'completion'}`, 'data-state': 'streaming', 'aria-busy': 'true', 'data-chunks': '0' },
      el('div', { class: 'msg-role' }, role), content, this.tools, this.meta);
  }

  add(chunk) {
    if (chunk.usage) this.usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const text = this.chat ? choice.delta?.content : choice.text;
    const tokens = this.chat ? fromChat(choice.logprobs) : fromCompletion(choice.logprobs);
    if (this.chat) for (const call of choice.delta?.tool_calls ?? []) this.addToolCall(call);
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    if (!text && tokens.length === 0) return;
    if (this.firstAt === null) {
      this.firstAt = performance.now();
      this.meta.textContent = 'generating\u2026';
    }
    this.chunks++;
    this.item.dataset.chunks = String(this.chunks);
    this.text += text ?? '';
    this.tokens.push(...tokens);
    if (this.showTokens && tokens.length) this.addTokens(tokens);
    else if (text) this.body.append(text);
  }

  addTokens(tokens) {
    const spans = tokenSpans(tokens);
    if (this.tokens.length === tokens.length) spans[0].tabIndex = 0;   // the token view's one tab stop
    this.body.classList.add('tokens');
    this.body.append(...spans);
  }

  addToolCall(call) {
    const entry = this.toolCalls[call.index ?? 0] ??= { id: call.id, type: 'function', function: { name: '', arguments: '' } };
    entry.id ??= call.id;
    entry.function.name += call.function?.name ?? '';
    entry.function.arguments += call.function?.arguments ?? '';
    this.tools.replaceChildren(...this.toolCalls.map(c => el('pre', { class: 'tool-call' }, `${c.function.name}(${c.function.arguments})`)));
  }

  finish(state) {
    this.state = state;
    this.item.dataset.state = state;
    this.item.removeAttribute('aria-busy');
    this.meta.replaceChildren(...this.figures().map((f, i) => el('span', { class: i === 0 ? `pill ${state}` : null }, f)));
  }

  figures() {
    const ended = performance.now();
    const reason = this.state === 'stopped' ? 'stopped' : this.state === 'error' ? 'error' : this.finishReason ?? 'done';
    const tokens = this.usage?.completion_tokens ?? (this.tokens.length || this.chunks);
    const figures = [reason, `${count(tokens)} tokens`];
    if (this.firstAt !== null) {
      figures.push(`first token ${seconds((this.firstAt - this.started) / 1000)}`);
      const decode = (ended - this.firstAt) / 1000;
      if (tokens > 1 && decode > 0) figures.push(`${rate((tokens - 1) / decode)} tok/s`);
    }
    if (this.usage?.prompt_tokens_details?.cached_tokens) figures.push(`${count(this.usage.prompt_tokens_details.cached_tokens)} prompt tokens cached`);
    return figures;
  }

  message() {
    const message = { role: 'assistant', content: this.text };
    if (this.toolCalls.length) message.tool_calls = this.toolCalls;
    return message;
  }

  summary() {
    if (this.state === 'done') return `Answer complete: ${this.finishReason ?? 'done'}.`;
    return this.state === 'stopped' ? 'Generation stopped.' : 'Nothing was generated.';
  }
}
