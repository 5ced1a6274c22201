// One answer in the transcript as it streams in: its thinking (under a server's --reasoning-parser), its text (or
// token spans), tool calls, and once it ends a line of figures (finish reason, tokens, time to first token, tokens/s).
// Text arrives in hundreds of chunks a second; it reaches the page once per frame, appended to one text node, so a
// long answer costs the page a layout per frame, not one per chunk.

import { fromChat, fromCompletion, tokenSpans } from './tokens.js';
import { el, count, rate, seconds } from './format.js';

/// One answer as it streams: thinking, text (or token spans), tool calls, and a line of figures once it ends.
export class AnswerView {
  constructor(role, prompt, showTokens) {
    this.chat = prompt === null;
    this.showTokens = showTokens;
    this.text = '';
    this.reasoning = '';
    this.tokens = [];
    this.toolCalls = [];
    this.chunks = 0;
    this.usage = null;
    this.finishReason = null;
    this.started = performance.now();
    this.firstAt = null;
    this.pending = { thought: '', body: [] };   // what arrived since the last frame: thinking, and text or tokens in order
    this.frame = null;
    this.onRender = null;                         // called after each frame's update (the transcript follows the text)
    this.body = el('div', { class: 'msg-text' });
    this.thoughts = el('div', { class: 'msg-thinking-text' });
    this.thinking = el('details', { class: 'msg-thinking', open: true, hidden: true }, el('summary', {}, 'Thinking'), this.thoughts);
    this.tools = el('div', { class: 'msg-tools' });
    this.meta = el('p', { class: 'msg-meta' }, 'waiting for the first token\u2026');
    const content = el('div', { class: 'msg-body' }, prompt === null ? '' : el('span', { class: 'prompt-echo' }, prompt), this.body);
    this.item = el('li', { class: `msg ${this.chat ? 'assistant' : 'completion'}`, 'data-state': 'streaming', 'aria-busy': 'true', 'data-chunks': '0' },
      el('div', { class: 'msg-role' }, role), this.thinking, content, this.tools, this.meta);
  }

  add(chunk) {
    if (chunk.usage) this.usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const text = this.chat ? choice.delta?.content : choice.text;
    const thought = this.chat ? choice.delta?.reasoning : null;
    const tokens = this.chat ? fromChat(choice.logprobs) : fromCompletion(choice.logprobs);
    if (this.chat) for (const call of choice.delta?.tool_calls ?? []) this.addToolCall(call);
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    if (!text && !thought && tokens.length === 0) return;
    if (this.firstAt === null) {
      this.firstAt = performance.now();
      this.meta.textContent = 'generating\u2026';
    }
    this.chunks++;
    this.item.dataset.chunks = String(this.chunks);
    this.text += text ?? '';
    if (thought) {
      this.reasoning += thought;
      this.pending.thought += thought;
    }
    this.tokens.push(...tokens);
    if (this.showTokens && tokens.length) this.pending.body.push({ tokens });
    else if (text) this.pending.body.push({ text });
    this.frame ??= requestAnimationFrame(() => this.render());
  }

  /// Puts what arrived since the last frame on the page.
  render() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    const { thought, body } = this.pending;
    this.pending = { thought: '', body: [] };
    if (thought) {
      this.thoughtNode ??= this.thoughts.appendChild(document.createTextNode(''));
      this.thoughtNode.appendData(thought);
      this.thinking.hidden = false;
    }
    // in arrival order: text joins the text node after the last spans, and spans start a new one after them
    for (const piece of body) {
      if (piece.tokens) {
        this.addTokens(piece.tokens);
        this.textNode = null;
      } else {
        this.textNode ??= this.body.appendChild(document.createTextNode(''));
        this.textNode.appendData(piece.text);
      }
    }
    this.onRender?.();
  }

  addTokens(tokens) {
    const spans = tokenSpans(tokens);
    if (!this.body.classList.contains('tokens')) spans[0].tabIndex = 0;   // the token view's one tab stop
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
    this.render();   // what the last frame has not shown yet
    this.state = state;
    this.item.dataset.state = state;
    this.item.removeAttribute('aria-busy');
    this.meta.replaceChildren(...this.figures().map((f, i) => el('span', { class: i === 0 ? `pill ${state}` : null }, f)));
  }

  figures() {
    const ended = performance.now();
    const reason = this.state === 'stopped' ? 'stopped' : this.state === 'error' ? 'error' : this.finishReason ?? 'done';
    const tokens = this.usage?.completion_tokens ?? (this.tokens.length || this.chunks);
    const figures = [reason, `${count(tokens)} ${tokens === 1 ? 'token' : 'tokens'}`];
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
    if (this.reasoning) message.reasoning = this.reasoning;
    return message;
  }

  summary() {
    if (this.state === 'done') return `Answer complete: ${this.finishReason ?? 'done'}.`;
    return this.state === 'stopped' ? 'Generation stopped.' : 'Nothing was generated.';
  }
}
